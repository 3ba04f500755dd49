/**
 * The first member name an object of a JSON text holds twice, or undefined. `JSON.parse` keeps the
 * last of them and SQLite's `json_extract` the first, so a stored record with one would hash as one
 * event and be read by SQL as another. `text` is JSON that `JSON.parse` accepted; names compare
 * decoded (`"\u0061"` is `"a"`).
 */
export function duplicateMember(text: string): string | undefined {
  // One entry per open object (its names so far) or array (null).
  const open: (Set<string> | null)[] = [];
  let nameNext = false;
  for (let at = 0; at < text.length; at += 1) {
    const char = text[at];
    if (char === '"') {
      let end = at + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const names = open.at(-1);
      if (nameNext && names) {
        const name = JSON.parse(text.slice(at, end + 1)) as string;
        if (names.has(name)) return name;
        names.add(name);
        nameNext = false;
      }
      at = end;
    } else if (char === '{') {
      open.push(new Set());
      nameNext = true;
    } else if (char === '[') {
      open.push(null);
      nameNext = false;
    } else if (char === '}' || char === ']') {
      open.pop();
    } else if (char === ',') {
      nameNext = open.at(-1) instanceof Set;
    }
  }
  return undefined;
}
