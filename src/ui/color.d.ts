/** Whether ANSI colour goes to this stream (FORCE_COLOR, NO_COLOR, TERM=dumb, then isTTY). */
export function wantColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean;
