import canonicalize from 'canonicalize';

/**
 * The RFC 8785 (JCS) text of `value`, byte for byte what the `canonicalize` package writes. JCS is
 * ECMAScript's JSON.stringify with every object's members in UTF-16 code unit order (RFC 8785
 * §3.2.3), for well-formed strings and finite numbers: so plain JSON data whose members are in
 * that order already (as boundAuditEvent builds a record) is given to JSON.stringify, in a third
 * of canonicalize's time. Anything else (members in another order, a lone surrogate, a number
 * JSON has no form for, a toJSON, a class instance) goes to
 * `canonicalize`, to be encoded or refused as before.
 */
export function jcs(value: unknown): string | undefined {
  return inJcsOrder(value) ? JSON.stringify(value) : canonicalize(value);
}

/** Whether JSON.stringify writes `value` as JCS does. */
function inJcsOrder(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed();
    case 'number':
      return Number.isFinite(value);
    case 'boolean':
      return true;
    case 'object':
      if (value === null) return true;
      return Array.isArray(value) ? arrayInOrder(value) : objectInOrder(value);
    default:
      return false;
  }
}

function arrayInOrder(array: unknown[]): boolean {
  if (Object.getPrototypeOf(array) !== Array.prototype) return false;
  for (let index = 0; index < array.length; index += 1) {
    // An undefined element (or a hole) is null to JSON.stringify and canonicalize alike.
    const element = array[index];
    if (element !== undefined && !inJcsOrder(element)) return false;
  }
  return true;
}

function objectInOrder(object: object): boolean {
  const prototype = Object.getPrototypeOf(object) as object | null;
  if (prototype !== Object.prototype && prototype !== null) return false;
  let previous: string | undefined;
  for (const key of Object.keys(object)) {
    if ((previous !== undefined && !(previous < key)) || !key.isWellFormed()) return false;
    const member = (object as Record<string, unknown>)[key];
    // An undefined member is left out by JSON.stringify and canonicalize alike.
    if (member !== undefined && !inJcsOrder(member)) return false;
    previous = key;
  }
  return true;
}
