"""A local fake of Shopify's Storefront API and of its order webhooks, speaking Shopify's wire shapes.

- `POST /api/{version}/graphql.json` with `X-Shopify-Storefront-Access-Token`: the GraphQL document is parsed,
  validated and executed by graphql-core against an SDL that copies the part of Shopify's published Storefront
  schema isa uses (types, field names, arguments, nullability), so a misspelt field fails here as it would there.
  Products (search syntax: words, `product_type:"X"`, `variants.price:<=N`; sort keys; cursor paging),
  `product`, `collections`, `nodes`, `productRecommendations`, the cart API (`cartCreate`, `cartLinesAdd`,
  `cartLinesUpdate`, `cartLinesRemove`, `cart`, `checkoutUrl`) with Shopify's userErrors.
- Knobs: `throttle(n, kind)` (HTTP 429 with Retry-After, or 200 with a THROTTLED error and a query-cost
  extension), `hang()` (answers only after `release()`), `expire(cart_id)`, and `requests` as received.
- `order_webhook(cart_id, ...)` builds the REST-shaped order payload Shopify posts for a checkout of that cart
  and signs it as Shopify does (X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256 of the body); written independently
  of isa's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
from graphql import GraphQLError, build_schema, graphql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SDL = """
scalar Decimal
scalar URL
scalar DateTime
interface Node { id: ID! }
enum CurrencyCode { USD EUR GBP }
enum ProductSortKeys { TITLE PRODUCT_TYPE VENDOR UPDATED_AT CREATED_AT BEST_SELLING PRICE ID RELEVANCE }
enum ProductRecommendationIntent { RELATED COMPLEMENTARY }
enum CartErrorCode { INVALID LESS_THAN INVALID_MERCHANDISE_LINE MISSING_DISCOUNT_CODE MISSING_NOTE }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! endCursor: String startCursor: String }
type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type ProductPriceRange { minVariantPrice: MoneyV2! maxVariantPrice: MoneyV2! }
type Image { url: URL! altText: String width: Int height: Int }
type ImageEdge { cursor: String! node: Image! }
type ImageConnection { edges: [ImageEdge!]! pageInfo: PageInfo! }
type SelectedOption { name: String! value: String! }
type ProductOptionValue { id: ID! name: String! }
type ProductOption { id: ID! name: String! optionValues: [ProductOptionValue!]! }
type ProductVariant implements Node {
  id: ID! title: String! sku: String availableForSale: Boolean! currentlyNotInStock: Boolean!
  quantityAvailable: Int price: MoneyV2! compareAtPrice: MoneyV2 selectedOptions: [SelectedOption!]!
  image: Image product: Product!
}
type ProductVariantEdge { cursor: String! node: ProductVariant! }
type ProductVariantConnection { edges: [ProductVariantEdge!]! pageInfo: PageInfo! }
type Product implements Node {
  id: ID! title: String! handle: String! description: String! vendor: String! productType: String!
  tags: [String!]! availableForSale: Boolean! onlineStoreUrl: URL priceRange: ProductPriceRange!
  featuredImage: Image options(first: Int): [ProductOption!]!
  images(first: Int, after: String): ImageConnection!
  variants(first: Int, after: String): ProductVariantConnection!
}
type ProductEdge { cursor: String! node: Product! }
type ProductConnection { edges: [ProductEdge!]! pageInfo: PageInfo! }
type Collection implements Node {
  id: ID! handle: String! title: String! description: String! updatedAt: DateTime! image: Image
}
type CollectionEdge { cursor: String! node: Collection! }
type CollectionConnection { edges: [CollectionEdge!]! pageInfo: PageInfo! }
union Merchandise = ProductVariant
type CartLineCost { amountPerQuantity: MoneyV2! subtotalAmount: MoneyV2! totalAmount: MoneyV2! }
interface BaseCartLine { id: ID! quantity: Int! merchandise: Merchandise! cost: CartLineCost! }
type CartLine implements BaseCartLine & Node { id: ID! quantity: Int! merchandise: Merchandise! cost: CartLineCost! }
type BaseCartLineEdge { cursor: String! node: BaseCartLine! }
type BaseCartLineConnection { edges: [BaseCartLineEdge!]! pageInfo: PageInfo! }
type CartCost { subtotalAmount: MoneyV2! totalAmount: MoneyV2! }
type Cart implements Node {
  id: ID! checkoutUrl: URL! totalQuantity: Int! createdAt: DateTime! updatedAt: DateTime! cost: CartCost!
  lines(first: Int, after: String): BaseCartLineConnection!
}
type CartUserError { code: CartErrorCode field: [String!] message: String! }
type CartCreatePayload { cart: Cart userErrors: [CartUserError!]! }
type CartLinesAddPayload { cart: Cart userErrors: [CartUserError!]! }
type CartLinesUpdatePayload { cart: Cart userErrors: [CartUserError!]! }
type CartLinesRemovePayload { cart: Cart userErrors: [CartUserError!]! }
input AttributeInput { key: String! value: String! }
input CartLineInput { merchandiseId: ID! quantity: Int attributes: [AttributeInput!] }
input CartLineUpdateInput { id: ID! quantity: Int merchandiseId: ID }
input CartInput { lines: [CartLineInput!] attributes: [AttributeInput!] note: String }
type QueryRoot {
  products(first: Int, after: String, last: Int, before: String, query: String, sortKey: ProductSortKeys,
           reverse: Boolean): ProductConnection!
  product(id: ID, handle: String): Product
  collections(first: Int, after: String): CollectionConnection!
  cart(id: ID!): Cart
  productRecommendations(productId: ID, intent: ProductRecommendationIntent): [Product!]
  nodes(ids: [ID!]!): [Node]!
}
type Mutation {
  cartCreate(input: CartInput): CartCreatePayload
  cartLinesAdd(cartId: ID!, lines: [CartLineInput!]!): CartLinesAddPayload
  cartLinesUpdate(cartId: ID!, lines: [CartLineUpdateInput!]!): CartLinesUpdatePayload
  cartLinesRemove(cartId: ID!, lineIds: [ID!]!): CartLinesRemovePayload
}
schema { query: QueryRoot mutation: Mutation }
"""
SCHEMA = build_schema(SDL)
TOKEN = "storefront-test-token"
SHOP = "isa-test.myshopify.com"
VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")
FILTER = re.compile(r'([a-z_.]+):(>=|<=|>|<)?("[^"]*"|\S+)')


def shopify_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _money(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    return {"amount": str(amount.quantize(Decimal("0.01"))), "currencyCode": currency}


def _connection(items: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
    start = int(base64.b64decode(after).decode().split(":")[1]) + 1 if after else 0
    page = items[start : start + (first or 250)]
    cursors = [base64.b64encode(f"cursor:{start + i}".encode()).decode() for i in range(len(page))]
    return {
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, page, strict=True)],
        "pageInfo": {
            "hasNextPage": start + len(page) < len(items),
            "hasPreviousPage": start > 0,
            "endCursor": cursors[-1] if cursors else None,
            "startCursor": cursors[0] if cursors else None,
        },
    }


@dataclass
class Variant:
    id: str
    title: str
    price: Decimal
    options: dict[str, str]
    available: bool = True
    quantity: int | None = 20


@dataclass
class Product:
    id: str
    title: str
    product_type: str
    vendor: str
    variants: list[Variant]
    tags: list[str] = field(default_factory=list)
    description: str = ""
    rank: int = 0  # best-selling order
    collection: str = "all"


def default_catalog() -> list[Product]:
    def p(n: int, title: str, kind: str, vendor: str, prices: list[str], **kw: Any) -> Product:
        variants = [
            Variant(f"gid://shopify/ProductVariant/{n}0{i}", size, Decimal(price), {"Size": size, "Color": "Navy"})
            for i, (size, price) in enumerate(zip(["S", "M", "L"], prices, strict=False))
        ]
        return Product(f"gid://shopify/Product/{n}", title, kind, vendor, variants, rank=n, **kw)

    catalog = [
        p(
            1,
            "Storm Rain Jacket",
            "Jackets",
            "Northwind",
            ["129.00", "129.00"],
            tags=["rain", "waterproof"],
            description="A waterproof rain jacket with taped seams.",
            collection="outerwear",
        ),
        p(
            2,
            "Drizzle Rain Jacket",
            "Jackets",
            "Northwind",
            ["79.00", "84.00"],
            tags=["rain"],
            description="A light rain jacket that packs into its pocket.",
            collection="outerwear",
        ),
        p(
            3,
            "Puddle Rain Jacket",
            "Jackets",
            "Coastline",
            ["59.50", "59.50", "64.50"],
            tags=["rain"],
            description="An everyday rain shell.",
            collection="outerwear",
        ),
        p(4, "Trail Fleece", "Sweaters", "Coastline", ["45.00"], tags=["warm"], description="A mid-layer fleece."),
        p(5, "Linen Shirt", "Shirts", "Atelier", ["39.00", "39.00"], description="A summer shirt."),
        p(6, "Wool Scarf", "Accessories", "Atelier", ["25.00"], description="A soft wool scarf."),
    ]
    catalog[3].variants[0].quantity = 2  # Trail Fleece S runs low
    return catalog


@dataclass
class FakeShopify:
    token: str = TOKEN
    webhook_secret: str = field(default_factory=lambda: "shpss_" + secrets.token_hex(16))
    catalog: list[Product] = field(default_factory=default_catalog)
    requests: list[dict[str, Any]] = field(default_factory=list)
    carts: dict[str, dict[str, Any]] = field(default_factory=dict)
    inventory_scope: bool = True  # False: the token may not read stock counts
    _throttles: list[str] = field(default_factory=list)
    _hanging: threading.Event | None = None

    # ---- knobs

    def throttle(self, times: int, kind: str = "http") -> None:
        """The next `times` requests are throttled: "http" (429 + Retry-After) or "graphql" (THROTTLED + cost)."""
        self._throttles.extend([kind] * times)

    def hang(self) -> None:
        self._hanging = threading.Event()

    def release(self) -> None:
        if self._hanging is not None:
            self._hanging.set()
        self._hanging = None

    def expire(self, cart_id: str) -> None:
        self.carts[cart_id]["expired"] = True

    def variant(self, variant_id: str) -> tuple[Product, Variant]:
        for product in self.catalog:
            for variant in product.variants:
                if variant.id == variant_id:
                    return product, variant
        raise KeyError(variant_id)

    def operations(self) -> list[str]:
        return [r["operation"] for r in self.requests]

    # ---- HTTP

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{version}/graphql.json", self._graphql, methods=["POST"])])

    async def _graphql(self, request: Request) -> JSONResponse:
        body = await request.json()
        operation = re.search(r"(query|mutation)\s+(\w+)", body.get("query", ""))
        self.requests.append(
            {
                "version": request.path_params["version"],
                "headers": dict(request.headers),
                "operation": operation.group(2) if operation else "",
                "variables": body.get("variables") or {},
            }
        )
        if self._hanging is not None:
            await anyio.to_thread.run_sync(self._hanging.wait, 20)
        if not VERSION.fullmatch(request.path_params["version"]):
            return JSONResponse({"errors": "Not Found"}, 404)
        if request.headers.get("x-shopify-storefront-access-token") != self.token:
            return JSONResponse({"errors": [{"message": "", "extensions": {"code": "UNAUTHORIZED"}}]}, 401)
        if self._throttles:
            kind = self._throttles.pop(0)
            if kind == "http":
                return JSONResponse({"errors": "Too Many Requests"}, 429, headers={"Retry-After": "0.01"})
            cost = {
                "requestedQueryCost": 12,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 11.5, "restoreRate": 50.0},
            }
            error = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}
            return JSONResponse({"errors": [error], "extensions": {"cost": cost}})
        result = await graphql(
            SCHEMA,
            body.get("query", ""),
            root_value=self._root(),
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return JSONResponse(out)

    # ---- resolvers (graphql-core calls a callable field value with (info, **arguments))

    def _root(self) -> dict[str, Any]:
        return {
            "products": lambda _i, **a: self._products(**a),
            "product": lambda _i, id=None, handle=None: next(
                (self._product(p) for p in self.catalog if p.id == id), None
            ),
            "collections": lambda _i, first=None, after=None: _connection(self._collections(), first, after),
            "cart": lambda _i, id: self._cart_node(id),
            "productRecommendations": lambda _i, productId=None, intent=None: self._recommend(productId),
            "nodes": lambda _i, ids: [self._node(i) for i in ids],
            "cartCreate": lambda _i, input=None: self._cart_create(input or {}),
            "cartLinesAdd": lambda _i, cartId, lines: self._lines_add(cartId, lines),
            "cartLinesUpdate": lambda _i, cartId, lines: self._lines_update(cartId, lines),
            "cartLinesRemove": lambda _i, cartId, lineIds: self._lines_remove(cartId, lineIds),
        }

    def _matches(self, product: Product, query: str) -> bool:
        for name, op, raw in FILTER.findall(query):
            value = raw.strip('"')
            if name == "product_type" and product.product_type.lower() != value.lower():
                return False
            if name == "variants.price":
                limit = Decimal(value)
                check = {">=": limit.__le__, "<=": limit.__ge__, ">": limit.__lt__, "<": limit.__gt__, "": limit.__eq__}
                if not any(check[op](v.price) for v in product.variants):
                    return False
        words = FILTER.sub("", query).lower().split()
        text = " ".join([product.title, product.description, product.product_type, *product.tags]).lower()
        return all(w in text for w in words)

    def _products(
        self,
        first: int | None = None,
        after: str | None = None,
        query: str | None = None,
        sortKey: str | None = None,
        reverse: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        found = [p for p in self.catalog if self._matches(p, query or "")]
        keys = {
            "PRICE": lambda p: min(v.price for v in p.variants),
            "TITLE": lambda p: p.title,
            "CREATED_AT": lambda p: p.rank,
            "BEST_SELLING": lambda p: p.rank,
        }
        if sortKey in keys:
            found.sort(key=keys[sortKey])
        if reverse:
            found.reverse()
        return _connection([self._product(p) for p in found], first, after)

    def _variant_node(self, product: Product, variant: Variant) -> dict[str, Any]:
        return {
            "__typename": "ProductVariant",
            "id": variant.id,
            "title": variant.title,
            "sku": variant.id.rsplit("/", 1)[1],
            "availableForSale": variant.available,
            "currentlyNotInStock": not variant.available,
            "quantityAvailable": lambda _i: self._quantity(variant),
            "price": _money(variant.price),
            "compareAtPrice": None,
            "selectedOptions": [{"name": k, "value": v} for k, v in variant.options.items()],
            "image": {"url": f"https://cdn.example.test/{variant.id.rsplit('/', 1)[1]}.jpg", "altText": None},
            "product": lambda _i: self._product(product),
        }

    def _quantity(self, variant: Variant) -> int | None:
        if not self.inventory_scope:  # what Shopify answers when the token lacks the inventory scope
            raise GraphQLError(
                "Access denied for quantityAvailable field. Required access: "
                "`unauthenticated_read_product_inventory` access scope.",
                extensions={"code": "ACCESS_DENIED"},
            )
        return variant.quantity

    def _product(self, product: Product) -> dict[str, Any]:
        prices = [v.price for v in product.variants]
        variants = [self._variant_node(product, v) for v in product.variants]
        names = list(dict.fromkeys(k for v in product.variants for k in v.options))
        options = [
            {
                "id": f"{product.id}/{n}",
                "name": n,
                "optionValues": [
                    {"id": f"{product.id}/{n}/{x}", "name": x}
                    for x in dict.fromkeys(v.options[n] for v in product.variants)
                ],
            }
            for n in names
        ]
        image = {"url": f"https://cdn.example.test/{product.id.rsplit('/', 1)[1]}.jpg", "altText": product.title}
        return {
            "__typename": "Product",
            "id": product.id,
            "title": product.title,
            "handle": product.title.lower().replace(" ", "-"),
            "description": product.description,
            "vendor": product.vendor,
            "productType": product.product_type,
            "tags": product.tags,
            "availableForSale": any(v.available for v in product.variants),
            "onlineStoreUrl": f"https://{SHOP}/products/{product.title.lower().replace(' ', '-')}",
            "priceRange": {"minVariantPrice": _money(min(prices)), "maxVariantPrice": _money(max(prices))},
            "featuredImage": image,
            "options": lambda _i, first=None: options,
            "images": lambda _i, first=None, after=None: _connection([image], first, after),
            "variants": lambda _i, first=None, after=None: _connection(variants, first, after),
        }

    def _collections(self) -> list[dict[str, Any]]:
        handles = list(dict.fromkeys(p.collection for p in self.catalog))
        return [
            {
                "__typename": "Collection",
                "id": f"gid://shopify/Collection/{i + 1}",
                "handle": h,
                "title": h.title(),
                "description": f"The {h} collection.",
                "updatedAt": "2026-11-01T00:00:00Z",
                "image": None,
            }
            for i, h in enumerate(handles)
        ]

    def _recommend(self, product_id: str | None) -> list[dict[str, Any]]:
        seed = next((p for p in self.catalog if p.id == product_id), None)
        if seed is None:
            return []
        return [self._product(p) for p in self.catalog if p.product_type == seed.product_type and p.id != seed.id]

    def _node(self, node_id: str) -> dict[str, Any] | None:
        try:
            product, variant = self.variant(node_id)
        except KeyError:
            return None
        return self._variant_node(product, variant)

    # ---- carts

    def _cart_node(self, cart_id: str) -> dict[str, Any] | None:
        cart = self.carts.get(cart_id)
        if cart is None or cart["expired"]:
            return None
        lines = []
        total = Decimal(0)
        for line in cart["lines"]:
            product, variant = self.variant(line["merchandise"])
            amount = variant.price * line["quantity"]
            total += amount
            cost = {
                "amountPerQuantity": _money(variant.price),
                "subtotalAmount": _money(amount),
                "totalAmount": _money(amount),
            }
            lines.append(
                {
                    "__typename": "CartLine",
                    "id": line["id"],
                    "quantity": line["quantity"],
                    "merchandise": self._variant_node(product, variant),
                    "cost": cost,
                }
            )
        return {
            "__typename": "Cart",
            "id": cart_id,
            "checkoutUrl": f"https://{SHOP}/cart/c/{cart['token']}?key={cart['key']}",
            "totalQuantity": sum(line["quantity"] for line in cart["lines"]),
            "createdAt": cart["created"],
            "updatedAt": cart["created"],
            "cost": {"subtotalAmount": _money(total), "totalAmount": _money(total)},
            "lines": lambda _i, first=None, after=None: _connection(lines, first, after),
        }

    def _add(self, cart: dict[str, Any], lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        errors = []
        for i, line in enumerate(lines):
            try:
                _product, variant = self.variant(line["merchandiseId"])
            except KeyError:
                errors.append(
                    {
                        "code": "INVALID",
                        "field": ["lines", str(i), "merchandiseId"],
                        "message": f"The merchandise with id {line['merchandiseId']} does not exist.",
                    }
                )
                continue
            if not variant.available:
                errors.append(
                    {
                        "code": "INVALID",
                        "field": ["lines", str(i), "merchandiseId"],
                        "message": "The product is already sold out.",
                    }
                )
                continue
            same = next((x for x in cart["lines"] if x["merchandise"] == variant.id), None)
            if same:
                same["quantity"] += line.get("quantity") or 1
            else:
                line_id = f"gid://shopify/CartLine/{secrets.token_hex(8)}?cart={cart['token']}"
                cart["lines"].append({"id": line_id, "merchandise": variant.id, "quantity": line.get("quantity") or 1})
        return errors

    def _cart_create(self, data: dict[str, Any]) -> dict[str, Any]:
        token = "hWN" + secrets.token_hex(10)
        key = secrets.token_hex(8)
        cart_id = f"gid://shopify/Cart/{token}?key={key}"
        cart = {"token": token, "key": key, "lines": [], "expired": False, "created": datetime.now(UTC).isoformat()}
        errors = self._add(cart, data.get("lines") or [])
        if errors:
            return {"cart": None, "userErrors": errors}
        self.carts[cart_id] = cart
        return {"cart": self._cart_node(cart_id), "userErrors": []}

    def _missing(self) -> dict[str, Any]:
        error = {"code": "INVALID", "field": ["cartId"], "message": "The specified cart does not exist."}
        return {"cart": None, "userErrors": [error]}

    def _lines_add(self, cart_id: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        cart = self.carts.get(cart_id)
        if cart is None or cart["expired"]:
            return self._missing()
        errors = self._add(cart, lines)
        return {"cart": self._cart_node(cart_id), "userErrors": errors}

    def _lines_update(self, cart_id: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        cart = self.carts.get(cart_id)
        if cart is None or cart["expired"]:
            return self._missing()
        for i, change in enumerate(lines):
            line = next((x for x in cart["lines"] if x["id"] == change["id"]), None)
            if line is None:
                error = {
                    "code": "INVALID",
                    "field": ["lines", str(i), "id"],
                    "message": "The specified cart line does not exist.",
                }
                return {"cart": self._cart_node(cart_id), "userErrors": [error]}
            line["quantity"] = change.get("quantity", line["quantity"])
        cart["lines"] = [x for x in cart["lines"] if x["quantity"] > 0]
        return {"cart": self._cart_node(cart_id), "userErrors": []}

    def _lines_remove(self, cart_id: str, line_ids: list[str]) -> dict[str, Any]:
        cart = self.carts.get(cart_id)
        if cart is None or cart["expired"]:
            return self._missing()
        cart["lines"] = [x for x in cart["lines"] if x["id"] not in line_ids]
        return {"cart": self._cart_node(cart_id), "userErrors": []}

    # ---- order webhooks

    def order_webhook(
        self,
        cart_id: str,
        *,
        order_id: int = 820982911946154508,
        number: int = 1001,
        financial_status: str = "paid",
        fulfillment_status: str | None = None,
        updated_at: str = "2026-12-01T10:00:00-05:00",
        topic: str = "orders/create",
        secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Shopify posts when the cart `cart_id` was checked out."""
        cart = self.carts[cart_id]
        items, subtotal = [], Decimal(0)
        for i, line in enumerate(cart["lines"]):
            product, variant = self.variant(line["merchandise"])
            subtotal += variant.price * line["quantity"]
            items.append(
                {
                    "id": 466157049 + i,
                    "variant_id": int(variant.id.rsplit("/", 1)[1]),
                    "product_id": int(product.id.rsplit("/", 1)[1]),
                    "title": product.title,
                    "variant_title": variant.title,
                    "quantity": line["quantity"],
                    "price": str(variant.price),
                    "sku": variant.id.rsplit("/", 1)[1],
                    "vendor": product.vendor,
                }
            )
        shipping = Decimal("5.00")
        order = {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{number}",
            "order_number": number,
            "email": "buyer@example.test",
            "created_at": "2026-12-01T09:00:00-05:00",
            "processed_at": "2026-12-01T09:00:00-05:00",
            "updated_at": updated_at,
            "cancelled_at": None,
            "cart_token": cart["token"],
            "checkout_token": secrets.token_hex(16),
            "currency": "USD",
            "financial_status": financial_status,
            "fulfillment_status": fulfillment_status,
            "subtotal_price": str(subtotal),
            "total_tax": "0.00",
            "total_price": str(subtotal + shipping),
            "total_shipping_price_set": {"shop_money": {"amount": str(shipping), "currency_code": "USD"}},
            "line_items": items,
            "shipping_address": {
                "first_name": "Ada",
                "address1": "1 Main St",
                "city": "Portland",
                "province_code": "OR",
                "country_code": "US",
                "zip": "97201",
            },
            "note_attributes": [],
        }
        body = json.dumps(order).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": shopify_hmac(body, secret or self.webhook_secret),
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Api-Version": "2026-04",
            "X-Shopify-Webhook-Id": secrets.token_hex(16),
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        }
        return body, headers
