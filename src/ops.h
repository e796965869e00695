/* ops.h - the operations endpoints: GET /healthz and GET /metrics. */
#ifndef PARLEY_OPS_H
#define PARLEY_OPS_H

struct worker_env;

/* Registers the routes with the http module. */
int ops_init(const struct worker_env *w);

#endif
