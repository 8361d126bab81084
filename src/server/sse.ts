/** Moved to src/wire/sse.ts (shared by every protocol); kept until the MCP adapter imports it from there. */
export { SseWriter } from '../wire/sse.ts';
