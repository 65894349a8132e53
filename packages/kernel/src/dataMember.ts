/**
 * Object members whose names come from run data (inputs, answers, tool outputs, step ids). An
 * assignment `obj[name] = v` with the name `__proto__` sets the object's prototype instead of a
 * member (and walks into Object.prototype when read back): names are data, so they are defined,
 * never assigned. `constructor` and `prototype` need nothing special when written, and readers use
 * own-member checks (statePath.readPath, Object.hasOwn).
 */

/** Sets `obj[name] = value` as an own, enumerable, writable member, whatever `name` is. */
export function setMember<T>(obj: Record<string, T>, name: string, value: T): void {
  if (name === '__proto__')
    Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
  else obj[name] = value;
}

/** `obj[name]` when it is an own member, else undefined (never an inherited one). */
export function ownMember<T>(obj: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(obj, name) ? obj[name] : undefined;
}
