// Vite's `?raw` imports: a file's text, in Node tests and inside workerd alike.
declare module '*.md?raw' {
  const text: string;
  export default text;
}

declare module '*.yaml?raw' {
  const text: string;
  export default text;
}
