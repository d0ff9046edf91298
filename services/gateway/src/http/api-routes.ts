import Router from '@koa/router';
import type { Context } from 'koa';
import type { z } from 'zod';
import type { Actor } from '../services/actor.ts';
import { requireAdmin } from '../services/actor.ts';
import { readJsonBody } from './json-body.ts';
import { parseOrThrow } from './validation.ts';

type Schema = z.ZodType | undefined;
type Out<S extends Schema> = S extends z.ZodType ? z.output<S> : undefined;

export type HttpMethod = 'get' | 'post' | 'patch' | 'delete' | 'put';

export interface ResponseSpec {
  description: string;
  /** JSON body schema; absent for empty or non-JSON bodies. */
  schema?: z.ZodType;
  /** Non-JSON bodies (tar streams, event streams, text). */
  contentType?: string;
}

/** What both the router and the OpenAPI document need to know about an operation. */
export interface OperationDoc {
  method: HttpMethod;
  /** Koa-style path, `/v1/backups/:id`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** public: no token; member: any valid token; admin: admin tokens only; basic: Bull Board's HTTP Basic. */
  access: 'public' | 'member' | 'admin' | 'basic';
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  responses: Record<number, ResponseSpec>;
}

export interface RouteInput<P extends Schema, Q extends Schema, B extends Schema> {
  params: Out<P>;
  query: Out<Q>;
  body: Out<B>;
  actor: Actor;
}

export interface ApiRoute<P extends Schema = Schema, Q extends Schema = Schema, B extends Schema = Schema> extends OperationDoc {
  access: 'member' | 'admin';
  params?: P;
  query?: Q;
  body?: B;
  /** Sets ctx.status / ctx.body (or streams); everything it receives is already validated. */
  handler(ctx: Context, input: RouteInput<P, Q, B>): Promise<void> | void;
}

export interface MountOptions {
  /** Resolves the bearer token of a request (throws 401). */
  authenticate(ctx: Context): Promise<Actor>;
  bodyLimit: number;
}

/**
 * The one registry of the HTTP API: routes are added with their zod schemas, mounted onto a
 * router that validates with exactly those schemas, and described in the OpenAPI document built
 * from the same entries. Operations served elsewhere (health, metrics, Bull Board) are
 * registered with `document` so the document stays complete.
 */
export class ApiRegistry {
  private readonly routes: ApiRoute[] = [];
  private readonly docs: OperationDoc[] = [];

  add<P extends Schema = undefined, Q extends Schema = undefined, B extends Schema = undefined>(route: ApiRoute<P, Q, B>): this {
    this.routes.push(route as unknown as ApiRoute);
    this.docs.push(route);
    return this;
  }

  document(doc: OperationDoc): this {
    this.docs.push(doc);
    return this;
  }

  operations(): readonly OperationDoc[] {
    return this.docs;
  }

  mount(options: MountOptions): Router {
    const router = new Router();
    for (const route of this.routes) {
      router[route.method](route.path, async (ctx) => {
        const actor = await options.authenticate(ctx);
        if (route.access === 'admin') requireAdmin(actor);
        const params = route.params ? parseOrThrow(route.params, ctx.params, 'path parameters') : undefined;
        const query = route.query ? parseOrThrow(route.query, flattenQuery(ctx.query), 'query parameters') : undefined;
        let body: unknown;
        if (route.body) {
          // An absent body is an empty object, so routes whose fields are all optional accept it;
          // a JSON `null` is not absent and fails like any other non-object.
          const raw = await readJsonBody(ctx, options.bodyLimit);
          body = parseOrThrow(route.body, raw === undefined ? {} : raw, 'request body');
        }
        await route.handler(ctx, { params, query, body, actor } as RouteInput<Schema, Schema, Schema>);
      });
    }
    return router;
  }
}

/** `?a=1&a=2` keeps the last value: every query parameter of the API is a scalar. */
function flattenQuery(query: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) {
    const value = Array.isArray(v) ? v[v.length - 1] : v;
    if (value !== undefined) out[k] = value;
  }
  return out;
}
