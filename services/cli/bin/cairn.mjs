#!/usr/bin/env node
// The `cairn` command (the bin of @cairn/cli and of the repository's root package). It runs the
// TypeScript sources through tsx's loader, so it works from any directory with no build step and
// without npm's banner. When the services are compiled to dist/, import the compiled main.js here instead.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
