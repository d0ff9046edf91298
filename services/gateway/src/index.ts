export * from './app.ts';
export * from './main.ts';
