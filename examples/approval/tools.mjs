// Tools for the approval example. A real deployment would call the bank here, passing the
// idempotency key so that a retried or recovered call cannot pay twice.
export const tools = [
  {
    name: 'execute_payment',
    description: 'Execute an approved payment (simulated, deterministic).',
    input_schema: {
      type: 'object',
      required: ['payment_id', 'amount_eur'],
      properties: { payment_id: { type: 'string' }, amount_eur: { type: 'number', minimum: 0 } },
    },
    output_schema: { type: 'object', required: ['transfer_id', 'status'] },
    run: async (args, ctx) => {
      if (ctx.signal.aborted) throw new Error('cancelled');
      return { transfer_id: `tr_${args.payment_id.slice(4)}`, status: 'executed' };
    },
  },
];
