// build/policies.json is written by scripts/bundle-policies.ts (wrangler's build step).
declare module '*/build/policies.json' {
  const files: readonly { readonly path: string; readonly text: string }[];
  export default files;
}
