/**
 * Short quotes of user text in messages. An error names where the problem is; it never echoes a
 * whole guard, document or value, however large.
 */

/** Characters of quoted text an error message shows. */
export const EXCERPT_WIDTH = 80;

/** Longest message a parse issue carries (its quoted part is cut to fit). */
export const MAX_MESSAGE_LENGTH = 240;

/**
 * At most `width` characters of `text` around `offset` (0-based), with `…` where it was cut. Short
 * text comes back unchanged.
 */
export function excerpt(text: string, offset = 0, width = EXCERPT_WIDTH): string {
  if (text.length <= width) return text;
  const at = Math.min(Math.max(offset, 0), text.length);
  let start = Math.max(0, at - Math.floor(width / 2));
  const end = Math.min(text.length, start + width);
  start = Math.max(0, end - width);
  // Do not split a surrogate pair.
  if (start > 0 && isLowSurrogate(text.charCodeAt(start))) start++;
  const cutEnd = end < text.length && isLowSurrogate(text.charCodeAt(end)) ? end - 1 : end;
  return `${start > 0 ? '…' : ''}${text.slice(start, cutEnd)}${cutEnd < text.length ? '…' : ''}`;
}

/** `message` cut to `max` characters, with `…` when it was cut. */
export function clipMessage(message: string, max = MAX_MESSAGE_LENGTH): string {
  if (message.length <= max) return message;
  let end = max - 1;
  if (isLowSurrogate(message.charCodeAt(end))) end--;
  return `${message.slice(0, end)}…`;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
