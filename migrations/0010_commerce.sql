-- 0010_commerce: shopping carts and orders (Shopify-backed). Amounts are numeric(14,3) in the row's currency.

CREATE TABLE carts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'checked_out', 'abandoned')),
    shopify_cart_id  text UNIQUE,
    checkout_url     text,
    currency         char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    cart_data        jsonb NOT NULL DEFAULT '{"items": []}'::jsonb CHECK (jsonb_typeof(cart_data) = 'object'),
    item_count       integer NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    subtotal_amount  numeric(14,3) NOT NULL DEFAULT 0 CHECK (subtotal_amount >= 0),
    tax_amount       numeric(14,3) NOT NULL DEFAULT 0 CHECK (tax_amount >= 0),
    total_amount     numeric(14,3) NOT NULL DEFAULT 0 CHECK (total_amount >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, user_id)
);
COMMENT ON TABLE carts IS 'A user''s shopping cart (items in cart_data, totals); at most one active cart per user.';
CREATE UNIQUE INDEX carts_one_active_per_user_idx ON carts (user_id) WHERE status = 'active';
CREATE INDEX carts_user_created_idx ON carts (user_id, created_at DESC);
CREATE TRIGGER carts_set_updated_at BEFORE UPDATE ON carts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE orders (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    cart_id            uuid,
    idempotency_key    text,
    shopify_order_id   text UNIQUE,
    order_number       text,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed')),
    payment_status     text NOT NULL DEFAULT 'pending'
                       CHECK (payment_status IN ('pending', 'authorized', 'paid', 'partially_refunded',
                                                 'refunded', 'voided', 'failed')),
    fulfillment_status text NOT NULL DEFAULT 'unfulfilled'
                       CHECK (fulfillment_status IN ('unfulfilled', 'partial', 'fulfilled', 'restocked', 'cancelled')),
    currency           char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    line_items         jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(line_items) = 'array'),
    shipping_address   jsonb,
    subtotal_amount    numeric(14,3) NOT NULL DEFAULT 0 CHECK (subtotal_amount >= 0),
    tax_amount         numeric(14,3) NOT NULL DEFAULT 0 CHECK (tax_amount >= 0),
    shipping_amount    numeric(14,3) NOT NULL DEFAULT 0 CHECK (shipping_amount >= 0),
    total_amount       numeric(14,3) NOT NULL DEFAULT 0 CHECK (total_amount >= 0),
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    placed_at          timestamptz,
    cancelled_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (cart_id, user_id) REFERENCES carts (id, user_id) ON DELETE SET NULL (cart_id),
    UNIQUE (user_id, idempotency_key)
);
COMMENT ON TABLE orders IS 'Orders placed by a user (Shopify order id, line items, amounts, payment and fulfillment status).';
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC);
CREATE INDEX orders_cart_idx ON orders (cart_id) WHERE cart_id IS NOT NULL;
CREATE TRIGGER orders_set_updated_at BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
