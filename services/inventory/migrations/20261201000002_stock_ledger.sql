-- Stock changes only by deltas, and every delta that is not a reservation is
-- written down, so that the stock can be audited.
--
-- THE INVARIANT (what `glasshouse-audit` checks, per SKU, on one consistent
-- snapshot of the database):
--
--   items.stock = SUM(stock_adjustments.delta)                       -- initial stock, opening balance, adjustments
--               + SUM(restocks.quantity)                             -- POST /items/{sku}/restock
--               - SUM(reservations.quantity WHERE released_at IS NULL) -- units held by orders
--
-- Why it holds: every statement that changes `items.stock` runs in the same
-- transaction as the row that explains it, under the item's row lock:
-- creating an item inserts a `stock_adjustments` row with reason `initial`;
-- a restock a `restocks` row; an adjustment (and the demo seed's
-- `--reset-stock`) a `stock_adjustments` row; a reservation a `reservations`
-- row; a release marks those rows released as it gives the units back.
-- `PUT /items/{sku}` never changes the stock of an existing item. A confirmed
-- order keeps its reservation rows unreleased: its units are sold.
-- (`store::ledger_mismatches` is the reference query.)
--
-- Items created before this migration get one `opening_balance` row, computed
-- here so that the invariant holds from now on; the history before it is not
-- known. Run it with the service stopped (the service runs its migrations at
-- start, before it serves), so no stock changes while the balance is taken.

-- Counts every change of an item row (name, price or stock, reservations
-- included): the item's `ETag` is this version, so an `If-Match` read before
-- any change is stale after it.
ALTER TABLE items ADD COLUMN version BIGINT NOT NULL DEFAULT 1 AFTER stock;

CREATE TABLE stock_adjustments (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    sku             VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- Units added (positive) or taken off (negative).
    delta           BIGINT NOT NULL,
    -- `initial`: the stock an item was created with (may be 0);
    -- `opening_balance`: set by this migration for items older than the ledger;
    -- `damaged`, `lost` (negative), `found` (positive), `count_correction`
    -- (either sign): POST /items/{sku}/adjustments, or the demo seed's
    -- `--reset-stock` (`count_correction`).
    reason          VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    -- Idempotency-Key of POST /items/{sku}/adjustments; NULL for rows the
    -- service writes itself (initial, opening balance, seed). Unique: the
    -- key's constraint is the truth, a repeat gets `response_body` back.
    idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
    -- The answer sent for the key (the item after the adjustment).
    response_body   TEXT NULL,
    created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    CONSTRAINT stock_adjustments_idempotency_key UNIQUE (idempotency_key),
    KEY stock_adjustments_sku (sku, id),
    CONSTRAINT stock_adjustments_reason CHECK (
        reason IN ('initial', 'opening_balance', 'damaged', 'lost', 'found', 'count_correction')
    ),
    CONSTRAINT stock_adjustments_delta_sign CHECK (
        (reason = 'initial' AND delta >= 0)
        OR reason = 'opening_balance'
        OR (reason IN ('damaged', 'lost') AND delta < 0)
        OR (reason = 'found' AND delta > 0)
        OR (reason = 'count_correction' AND delta <> 0)
    )
) ENGINE = InnoDB;

-- The opening balance of every existing item: what makes the invariant true now.
INSERT INTO stock_adjustments (sku, delta, reason)
SELECT i.sku,
       i.stock + COALESCE(held.units, 0) - COALESCE(added.units, 0),
       'opening_balance'
FROM items i
LEFT JOIN (SELECT sku, SUM(quantity) AS units FROM reservations WHERE released_at IS NULL GROUP BY sku) held ON held.sku = i.sku
LEFT JOIN (SELECT sku, SUM(quantity) AS units FROM restocks GROUP BY sku) added ON added.sku = i.sku;
