#!/usr/bin/env node
// The `keyway` command. In the repository it runs from the TypeScript source (Node strips the
// types); the published package ships no source, only the JavaScript `npm run build` emits,
// because Node refuses to strip types from files under node_modules.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
await import(existsSync(source) ? source.href : new URL('../dist/cli/main.js', import.meta.url).href);
