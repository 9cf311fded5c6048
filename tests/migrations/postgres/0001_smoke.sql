-- Smoke-test schema: proves sqlx migrations run against the stack's PostgreSQL.
CREATE TABLE smoke_orders (
    id UUID PRIMARY KEY,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
