/* ops.h - the operations endpoints: GET /healthz and GET /metrics. */
#ifndef PARLEY_OPS_H
#define PARLEY_OPS_H

/* Registers the routes with the http module. */
void ops_register(void);

#endif
