import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDiscount, total } from '../build/price.js';

test('a 10% discount on 200 is 180', () => {
  assert.equal(applyDiscount(200, 10), 180);
});

test('discounts are rounded to cents', () => {
  assert.equal(applyDiscount(19.99, 15), 16.99);
});

test('total adds the prices', () => {
  assert.equal(total([1, 2.5]), 3.5);
});
