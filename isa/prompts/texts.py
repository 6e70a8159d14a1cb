"""The wording of the prompt families that share a shape (app widgets, shopping, autonomous tasks).

Each entry is (name, description, instruction). The instruction is the expert brief; the functions in
`tools.py` wrap it with the caller's arguments.
"""

from __future__ import annotations

AUTONOMOUS = [
    (
        "scrape_and_analyze_prompt",
        "Plan a web scrape and analysis of the pages a task needs.",
        "Decide which pages to fetch, what to extract from each (text, tables, links), how to check the extraction "
        "worked, and how to summarise the findings with the source URL next to every claim.",
    ),
    (
        "content_analysis_prompt",
        "Analyse a piece of content for themes, claims, tone and quality.",
        "Identify the main themes, the factual claims (and which need verification), the tone and audience, and "
        "concrete improvements. Quote the passages you rely on.",
    ),
    (
        "visual_creation_prompt",
        "Plan an image or visual asset from a brief.",
        "Turn the brief into a precise visual description: subject, composition, style, palette, lighting, aspect "
        "ratio and what must not appear. Offer two alternatives that differ in one deliberate way.",
    ),
    (
        "task_analysis_prompt",
        "Break a request into steps with dependencies, tools and success checks.",
        "List the steps needed, which can run in parallel, which tool serves each, what each step produces, and "
        "how to tell it succeeded. Flag steps that need the user's approval.",
    ),
    (
        "execution_prompt",
        "Execute a planned step and report the outcome precisely.",
        "Carry out the current step with the tools available, report exactly what was done and what came back, "
        "and say whether the step's success check passed. Never claim a result you did not observe.",
    ),
    (
        "photo_organization_prompt",
        "Organise a photo collection into albums with consistent naming.",
        "Propose an album structure (by date, place, people or event), a file-naming scheme, how to find duplicates "
        "and blurred shots, and which photos need the owner's decision.",
    ),
    (
        "backup_strategy_prompt",
        "Design a backup strategy with recovery targets.",
        "Recommend what to back up, how often, where (3-2-1 rule), how long to keep it, how to encrypt it, and how "
        "to test a restore. State the recovery point and recovery time each choice gives.",
    ),
]

DREAM = [
    (
        "text_to_image_prompt",
        "Write an image-generation prompt from a text idea.",
        ["prompt", "style_preset", "quality"],
    ),
    ("image_to_image_prompt", "Guide an image-to-image transformation.", ["prompt", "style_preset", "strength"]),
    ("style_transfer_prompt", "Apply an artistic style to an image.", ["prompt", "style_preset", "strength"]),
    (
        "face_swap_prompt",
        "Prepare a face swap that keeps lighting and skin tone consistent.",
        ["hair_source", "quality"],
    ),
    (
        "professional_headshot_prompt",
        "Create a professional headshot for an industry.",
        ["prompt", "industry", "quality"],
    ),
    ("emoji_generation_prompt", "Design a custom emoji.", ["prompt", "expression", "style_preset", "color_scheme"]),
    ("photo_inpainting_prompt", "Fill or replace a masked region of a photo.", ["prompt", "fill_method", "strength"]),
    ("photo_outpainting_prompt", "Extend a photo beyond its borders.", ["prompt", "direction", "strength"]),
    (
        "sticker_generation_prompt",
        "Design a sticker with a clean cut-out outline.",
        ["prompt", "style_preset", "theme"],
    ),
]

# The dream prompts end by handing their result to isa.media's generate_image with the matching image type.
DREAM_IMAGE_TYPES = {
    "text_to_image_prompt": "text_to_image",
    "image_to_image_prompt": "image_to_image",
    "style_transfer_prompt": "style_transfer",
    "face_swap_prompt": "face_swap",
    "professional_headshot_prompt": "professional_headshot",
    "emoji_generation_prompt": "emoji",
    "photo_inpainting_prompt": "inpainting",
    "photo_outpainting_prompt": "outpainting",
    "sticker_generation_prompt": "sticker",
}

HUNT = [
    (
        "hunt_ecommerce_prompt",
        "Search for products: prices, sellers, reviews and availability.",
        "Compare offers across sellers: price with shipping, seller rating, return policy, stock and review quality.",
    ),
    (
        "hunt_academic_prompt",
        "Search academic literature for papers and findings.",
        "Find peer-reviewed sources, summarise methods and results, note sample sizes and citation counts, and "
        "separate consensus from open questions.",
    ),
    (
        "hunt_social_prompt",
        "Search social platforms for discussions and sentiment.",
        "Collect representative posts, estimate sentiment and its drivers, note influential voices, and warn about "
        "bots and unverified claims.",
    ),
    (
        "hunt_general_prompt",
        "Search the web for a topic and report what is known.",
        "Gather authoritative sources, reconcile conflicting facts, and report what is established, disputed or "
        "unknown, with links.",
    ),
]

OMNI = [
    ("market_analysis_prompt", "Write a market analysis.", "market size, segments, competitors, trends and risks"),
    ("business_strategy_prompt", "Develop a business strategy.", "position, options, trade-offs and a 90-day plan"),
    ("financial_analysis_prompt", "Analyse financial performance.", "revenue, margins, cash flow, ratios and outlook"),
    ("storytelling_prompt", "Write a story.", "characters, conflict, structure and a satisfying resolution"),
    ("general_content_prompt", "Write general content.", "a clear structure, concrete examples and a summary"),
    ("research_report_prompt", "Write a research report.", "question, method, findings, limitations, sources"),
    ("tutorial_prompt", "Write a step-by-step tutorial.", "prerequisites, numbered steps, checks and pitfalls"),
    ("course_material_prompt", "Create course material.", "learning objectives, modules, exercises and assessment"),
    (
        "wellness_guide_prompt",
        "Write a wellness guide.",
        "evidence-based habits, safety notes and when to see a doctor",
    ),
    (
        "productivity_guide_prompt",
        "Write a productivity guide.",
        "methods, routines, tools and how to measure progress",
    ),
    ("campaign_strategy_prompt", "Plan a marketing campaign.", "audience, message, channels, budget, timeline, KPIs"),
    ("content_marketing_prompt", "Plan content marketing.", "pillars, formats, calendar, distribution and metrics"),
    ("news_analysis_prompt", "Analyse a news story.", "what happened, context, stakeholders, credibility, outlook"),
    ("career_guide_prompt", "Write a career guide.", "paths, skills, credentials, pay ranges and first steps"),
    ("research_paper_prompt", "Draft a research paper.", "abstract, related work, method, results, discussion"),
    (
        "tech_review_prompt",
        "Review a technology or product.",
        "capabilities, benchmarks, limits, alternatives, verdict",
    ),
    ("implementation_guide_prompt", "Write an implementation guide.", "architecture, steps, configuration, testing"),
]

# The shopping prompts name the commerce tools (isa.commerce) so the model uses the store, not its memory.
SHOP_WITH_TOOLS = (
    " Use search_products and get_product_details for real products, prices and stock (never state a price the"
    " store did not give), add_to_cart when the user chooses, and create_checkout only when they ask to pay."
)

SHOPPING = [
    (
        "personal_stylist_prompt",
        "Act as a personal stylist for an occasion and budget.",
        "Suggest complete looks with reasons tied to body shape, occasion, climate and budget; list each item.",
    ),
    (
        "product_comparison_prompt",
        "Compare products side by side.",
        "Compare on the criteria that matter for this buyer, in a table, and recommend one with the deciding reason.",
    ),
    (
        "outfit_coordination_prompt",
        "Coordinate outfits from pieces the user owns.",
        "Combine the listed pieces into outfits, note colour and formality rules, and name at most two gap items.",
    ),
    (
        "shopping_assistant_prompt",
        "Help the user find and choose something to buy.",
        "Ask what is missing, shortlist options within budget, and explain trade-offs plainly.",
    ),
    (
        "trend_analysis_prompt",
        "Analyse current trends in a product category.",
        "Describe rising and fading trends with evidence, who they suit, and how long they are likely to last.",
    ),
    (
        "size_fit_consultant_prompt",
        "Advise on size and fit across brands.",
        "Translate the user's measurements to each brand's size chart, flag brands that run small or large, and "
        "say when to size up.",
    ),
]
