/**
 * A stdio MCP server (official SDK) that remembers the last logging/setLevel it was sent; its tool `level` says
 * which. Run as a child process by the gateway (one process every client shares).
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema, SetLevelRequestSchema } from '@modelcontextprotocol/sdk/types.js';

let level = 'unset';
const server = new Server({ name: 'stdio-level', version: '1.0.0' }, { capabilities: { tools: {}, logging: {} } });
server.setRequestHandler(SetLevelRequestSchema, (req) => {
  level = req.params.level;
  return {};
});
server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: 'level', description: 'The level last set', inputSchema: { type: 'object', properties: {} } }] }));
server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: 'text', text: level }] }));
await server.connect(new StdioServerTransport());
