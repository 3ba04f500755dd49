/**
 * The JSON objects and arrays written one after another in `text`, with or without whitespace between them, as
 * `curl -s … >> FILE` appends a witness's answers. A SyntaxError says where the text is not JSON.
 */
export function jsonSequence(text: string): unknown[] {
  const documents: unknown[] = [];
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let at = 0; at < text.length; at += 1) {
    const char = text[at];
    if (inString) {
      if (char === '\\') at += 1;
      else if (char === '"') inString = false;
      continue;
    }
    // Between values only whitespace: a string, a number or a stray bracket there would be skipped, and what it hides with it.
    if (depth === 0 && char !== '{' && char !== '[') {
      if (char?.trim() !== '') throw new SyntaxError(`not JSON at character ${at + 1}: an object or an array starts each value`);
      continue;
    }
    if (char === '"') inString = true;
    else if (char === '{' || char === '[') {
      if (depth === 0) start = at;
      depth += 1;
    } else if (char === '}' || char === ']') {
      depth -= 1;
      if (depth === 0) documents.push(JSON.parse(text.slice(start, at + 1)));
    }
  }
  if (depth !== 0 || inString) throw new SyntaxError('the JSON ends unfinished');
  return documents;
}
