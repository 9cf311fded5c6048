-- Order service schema (PostgreSQL). The outbox and processed_events tables
-- come from the platform's migrations, run first.
CREATE TABLE orders (
    id               UUID PRIMARY KEY,
    customer_id      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED')),
    currency         CHAR(3) NOT NULL,
    total_minor      BIGINT NOT NULL CHECK (total_minor >= 0),
    rejection_reason TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- "My orders, newest first", keyset-paginated on (created_at, id).
CREATE INDEX orders_customer_created ON orders (customer_id, created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id         UUID NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- Idempotency-Key: the constraint is the truth. Two concurrent requests with
-- one key serialize on this primary key; the loser reads the winner's answer.
CREATE TABLE idempotency_keys (
    customer_id   TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    order_id      UUID NOT NULL REFERENCES orders (id),
    response_body TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (customer_id, key)
);
