/** A lookup the operator asked for that cannot be answered as given: the API answers 400 naming `field`. */
export class InvalidQueryError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InvalidQueryError';
  }
}
