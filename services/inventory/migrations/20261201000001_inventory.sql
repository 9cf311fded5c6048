-- Inventory service schema (MariaDB / MySQL, InnoDB). The outbox and
-- processed_events tables come from the platform's migrations, run first.
--
-- SKUs are ASCII with a binary collation: the server default collation is
-- case-insensitive, and SKUs must compare as bytes, exactly as Rust's `Ord`
-- on `Sku` does, so "rows in SKU order" means the same order to both (the
-- reservation transaction takes its row locks in that order).

CREATE TABLE items (
    sku         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name        VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    price_minor BIGINT NOT NULL,
    currency    CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- Units available to reserve (reserved units are already taken off).
    stock       BIGINT NOT NULL,
    created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (sku),
    -- inventory_stock_low_items counts `stock <= threshold`.
    KEY items_stock (stock),
    CONSTRAINT items_price_not_negative CHECK (price_minor >= 0),
    -- The last line of defence against oversell: no statement can take stock below zero.
    CONSTRAINT items_stock_not_negative CHECK (stock >= 0)
) ENGINE = InnoDB;

-- One row per (order, SKU): the primary key is what makes a reservation
-- happen at most once per order, whatever the consumer does.
CREATE TABLE reservations (
    order_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    sku         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    quantity    INT NOT NULL,
    reserved_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- Set once, when the order is cancelled and the units go back to stock.
    released_at TIMESTAMP(6) NULL DEFAULT NULL,
    PRIMARY KEY (order_id, sku),
    CONSTRAINT reservations_quantity_positive CHECK (quantity > 0)
) ENGINE = InnoDB;

-- Idempotency-Key of POST /items/{sku}/restock: the key's primary key is the
-- truth; a repeat with the same request gets the stored answer.
CREATE TABLE restocks (
    idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    sku             VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    quantity        INT NOT NULL,
    response_body   TEXT NOT NULL,
    created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT restocks_pkey PRIMARY KEY (idempotency_key)
) ENGINE = InnoDB;
