/**
 * The server will not start, for a reason the operator must act on (a folder
 * another server owns...). main prints the message alone: a stack trace would
 * only bury the advice, and it is not a bug.
 */
export class StartRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartRefusal";
  }
}
