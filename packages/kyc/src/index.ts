/** @nano-vm/kyc — see the package description; the public API is pinned by test/publicApi.test.ts once it exists. */
export const PACKAGE_NAME = '@nano-vm/kyc';
