// Tools for the refund example. A real deployment would call the payment provider here, passing
// the idempotency key so that a retried or recovered call cannot refund twice.
export const tools = [
  {
    name: 'issue_refund',
    description: 'Issue a refund for an order (simulated, deterministic).',
    input_schema: {
      type: 'object',
      required: ['order_id', 'amount'],
      properties: { order_id: { type: 'string' }, amount: { type: 'number', minimum: 0, maximum: 500 } },
    },
    output_schema: { type: 'object', required: ['refund_id', 'status'] },
    run: async (args, ctx) => {
      if (ctx.signal.aborted) throw new Error('cancelled');
      return { refund_id: `rf_${args.order_id.slice(4)}_${Math.round(args.amount * 100)}`, status: 'issued' };
    },
  },
];
