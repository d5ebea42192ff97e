export const USAGE_FILE: URL;
export const USAGE_SOURCES: string[];
export function version(): string;
export function usageKey(): string;
export function answerFast(
  argv: string[],
  io?: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; env: Record<string, string | undefined> },
): number | undefined;
