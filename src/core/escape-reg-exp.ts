/** `text` as a regular expression that matches it literally (JavaScript's and RE2's metacharacters escaped). */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
