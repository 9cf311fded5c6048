-- Smoke-test schema: proves sqlx migrations run against the stack's MariaDB.
CREATE TABLE smoke_stock (
    sku VARCHAR(64) PRIMARY KEY,
    stock INT NOT NULL CHECK (stock >= 0),
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;
