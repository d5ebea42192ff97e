// One error base class for the whole tool. The CLI prints `message` (plus `hint`) for FarmErrors and
// a stack trace for anything else, and only the entry point turns errors into exit codes.

export type ErrorCode =
  | 'INVENTORY'        // the inventory file is invalid
  | 'USAGE'            // bad command-line arguments
  | 'HOST_KEY'         // SSH host key unknown or changed
  | 'SSH'              // SSH connection or authentication failed
  | 'REMOTE_COMMAND'   // a command on a worker exited non-zero
  | 'WORKER_UNHEALTHY' // probe found a worker unusable
  | 'NO_WORKER'        // no healthy worker for an arch
  | 'BUILD'            // podman build or builder run failed
  | 'FETCH'            // transferring an artifact failed
  | 'CHECKSUM'         // an artifact's sha256 did not match
  | 'STATE'            // the state directory or a record is unusable
  | 'UPLOAD'           // an uploader failed
  | 'REGISTRY'         // a container registry refused or failed a request
  | 'ABORTED';         // cancelled by the user or a signal

export class FarmError extends Error {
  readonly code: ErrorCode;
  /** What the user can do about it, printed under the message. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FarmError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isAbortError(err: unknown): boolean {
  return (
    (err instanceof FarmError && err.code === 'ABORTED') ||
    (err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR'))
  );
}

/** Throws a FarmError('ABORTED') if the signal has fired; call between steps. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new FarmError('ABORTED', 'cancelled');
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
