"""The Storefront API GraphQL documents we send (field names as in Shopify's published schema)."""

from __future__ import annotations

MONEY = "amount currencyCode"

PRODUCT_CARD = f"""
fragment ProductCard on Product {{
  id title handle vendor productType tags availableForSale onlineStoreUrl
  priceRange {{ minVariantPrice {{ {MONEY} }} maxVariantPrice {{ {MONEY} }} }}
  featuredImage {{ url altText }}
  topVariants: variants(first: 10) {{ edges {{ node {{ id title availableForSale price {{ {MONEY} }} }} }} }}
}}
"""

SEARCH_PRODUCTS = (
    """
query SearchProducts($first: Int!, $after: String, $query: String, $sortKey: ProductSortKeys, $reverse: Boolean) {
  products(first: $first, after: $after, query: $query, sortKey: $sortKey, reverse: $reverse) {
    edges { cursor node { ...ProductCard } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
    + PRODUCT_CARD
)

VARIANT_FIELDS = f"""
  id title sku availableForSale currentlyNotInStock quantityAvailable
  price {{ {MONEY} }} compareAtPrice {{ {MONEY} }}
  selectedOptions {{ name value }}
  image {{ url altText }}
"""

PRODUCT_DETAILS = (
    f"""
query ProductDetails($id: ID!) {{
  product(id: $id) {{
    ...ProductCard
    description
    options {{ name optionValues {{ name }} }}
    images(first: 10) {{ edges {{ node {{ url altText width height }} }} }}
    variants(first: 100) {{ edges {{ node {{ {VARIANT_FIELDS} }} }} }}
  }}
}}
"""
    + PRODUCT_CARD
)

CART_FIELDS = f"""
fragment CartFields on Cart {{
  id checkoutUrl totalQuantity
  cost {{ subtotalAmount {{ {MONEY} }} totalAmount {{ {MONEY} }} }}
  lines(first: 100) {{
    edges {{ node {{
      id quantity
      cost {{ amountPerQuantity {{ {MONEY} }} totalAmount {{ {MONEY} }} }}
      merchandise {{
        ... on ProductVariant {{
          id title availableForSale
          selectedOptions {{ name value }}
          price {{ {MONEY} }}
          image {{ url altText }}
          product {{ id title handle vendor productType }}
        }}
      }}
    }} }}
  }}
}}
"""

USER_ERRORS = "userErrors { field message code }"

CART = "query Cart($id: ID!) { cart(id: $id) { ...CartFields } }" + CART_FIELDS

CART_CREATE = (
    "mutation CartCreate($input: CartInput!) {"
    f" cartCreate(input: $input) {{ cart {{ ...CartFields }} {USER_ERRORS} }} }}" + CART_FIELDS
)

CART_LINES_ADD = (
    "mutation CartLinesAdd($cartId: ID!, $lines: [CartLineInput!]!) {"
    f" cartLinesAdd(cartId: $cartId, lines: $lines) {{ cart {{ ...CartFields }} {USER_ERRORS} }} }}" + CART_FIELDS
)

CART_LINES_UPDATE = (
    "mutation CartLinesUpdate($cartId: ID!, $lines: [CartLineUpdateInput!]!) {"
    f" cartLinesUpdate(cartId: $cartId, lines: $lines) {{ cart {{ ...CartFields }} {USER_ERRORS} }} }}" + CART_FIELDS
)

CART_LINES_REMOVE = (
    "mutation CartLinesRemove($cartId: ID!, $lineIds: [ID!]!) {"
    f" cartLinesRemove(cartId: $cartId, lineIds: $lineIds) {{ cart {{ ...CartFields }} {USER_ERRORS} }} }}"
    + CART_FIELDS
)

COLLECTIONS = """
query Collections($first: Int!, $after: String) {
  collections(first: $first, after: $after) {
    edges { cursor node { id handle title description updatedAt image { url altText } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

RECOMMENDATIONS = (
    """
query Recommendations($productId: ID!) {
  productRecommendations(productId: $productId, intent: RELATED) { ...ProductCard }
}
"""
    + PRODUCT_CARD
)

VARIANT_STOCK = f"""
query VariantStock($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on ProductVariant {{
      id title availableForSale currentlyNotInStock quantityAvailable
      price {{ {MONEY} }}
      product {{ id title handle }}
    }}
  }}
}}
"""

ASSORTMENT = f"""
query Assortment($first: Int!, $after: String) {{
  products(first: $first, after: $after, sortKey: BEST_SELLING) {{
    edges {{ cursor node {{
      id title vendor productType tags
      priceRange {{ minVariantPrice {{ {MONEY} }} maxVariantPrice {{ {MONEY} }} }}
      options {{ name optionValues {{ name }} }}
    }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""
