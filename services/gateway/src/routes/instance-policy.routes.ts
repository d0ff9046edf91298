import { IdParams, InstancePolicyView, ManualRetentionPreview, ManualRetentionPreviewBody, UpdateInstancePolicyBody } from '@cairn/core/api/index.ts';
import type { ApiRegistry } from '../http/api-routes.ts';
import type { InstancePolicyService } from '../services/instance-policy.service.ts';

/** Per-instance overrides (issue 13): the manual backup limit and manual retention, with a dry run. */
export function instancePolicyRoutes(api: ApiRegistry, policies: InstancePolicyService): void {
  api.add({
    method: 'get',
    path: '/v1/instances/:id/policy',
    operationId: 'getInstancePolicy',
    summary: "Show an instance's manual backup limit and manual retention policy",
    tag: 'instances',
    access: 'member',
    params: IdParams,
    responses: { 200: { description: 'the policy (defaults when never changed)', schema: InstancePolicyView } },
    async handler(ctx, { actor, params }) {
      ctx.body = await policies.get(actor, params.id);
    },
  });
  api.add({
    method: 'patch',
    path: '/v1/instances/:id/policy',
    operationId: 'updateInstancePolicy',
    summary: "Change an instance's manual backup limit, manual retention policy or its time zone",
    description:
      'manualRetention takes the rules of a schedule and applies them to the manual backups (trigger=manual) that are completed and not pinned: ' +
      'right away by a retention job, then in every periodic retention run. null removes an override.',
    tag: 'instances',
    access: 'member',
    params: IdParams,
    body: UpdateInstancePolicyBody,
    responses: { 200: { description: 'the changed policy', schema: InstancePolicyView } },
    async handler(ctx, { actor, params, body }) {
      ctx.body = await policies.update(actor, params.id, body);
    },
  });
  api.add({
    method: 'post',
    path: '/v1/instances/:id/policy/retention/preview',
    operationId: 'previewManualRetention',
    summary: 'Dry run of manual retention: which manual backups a policy would keep and delete now, and why',
    description: "Changes nothing. Without a body the instance's own manual retention policy is used (400 when it has none).",
    tag: 'instances',
    access: 'member',
    params: IdParams,
    body: ManualRetentionPreviewBody,
    responses: { 200: { description: 'the plan', schema: ManualRetentionPreview } },
    async handler(ctx, { actor, params, body }) {
      ctx.body = await policies.previewRetention(actor, params.id, body);
    },
  });
}
