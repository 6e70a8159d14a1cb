"""The prompt library: all 55 prompts of the original, each with its arguments, rendering real text."""

from __future__ import annotations

import pytest

from isa.prompts.tools import capabilities

ORIGINAL = {
    "default_reason_prompt",
    "default_response_prompt",
    "default_review_prompt",
    "scrape_and_analyze_prompt",
    "content_analysis_prompt",
    "visual_creation_prompt",
    "task_analysis_prompt",
    "execution_prompt",
    "photo_organization_prompt",
    "backup_strategy_prompt",
    "intelligent_rag_search_prompt",
    "rag_collection_analysis_prompt",
    "rag_synthesis_prompt",
    "security_analysis_prompt",
    "memory_organization_prompt",
    "monitoring_report_prompt",
    "user_assistance_prompt",
    "text_to_image_prompt",
    "image_to_image_prompt",
    "style_transfer_prompt",
    "face_swap_prompt",
    "professional_headshot_prompt",
    "emoji_generation_prompt",
    "photo_inpainting_prompt",
    "photo_outpainting_prompt",
    "sticker_generation_prompt",
    "hunt_ecommerce_prompt",
    "hunt_academic_prompt",
    "hunt_social_prompt",
    "hunt_general_prompt",
    "csv_analyze_prompt",
    "knowledge_analyze_prompt",
    "market_analysis_prompt",
    "business_strategy_prompt",
    "financial_analysis_prompt",
    "storytelling_prompt",
    "general_content_prompt",
    "research_report_prompt",
    "tutorial_prompt",
    "course_material_prompt",
    "wellness_guide_prompt",
    "productivity_guide_prompt",
    "campaign_strategy_prompt",
    "content_marketing_prompt",
    "news_analysis_prompt",
    "career_guide_prompt",
    "research_paper_prompt",
    "tech_review_prompt",
    "implementation_guide_prompt",
    "personal_stylist_prompt",
    "product_comparison_prompt",
    "outfit_coordination_prompt",
    "shopping_assistant_prompt",
    "trend_analysis_prompt",
    "size_fit_consultant_prompt",
}
BY_NAME = {p.name: p for p in capabilities.prompts}


def test_all_55_prompts_of_the_original_are_declared_including_the_six_it_never_registered() -> None:
    assert len(ORIGINAL) == 55
    assert set(BY_NAME) == ORIGINAL


@pytest.mark.parametrize("name", sorted(ORIGINAL))
@pytest.mark.anyio
async def test_each_prompt_renders_its_arguments_into_the_text(name: str) -> None:
    prompt = BY_NAME[name].sdk
    args = {a.name: f"value-of-{a.name}" for a in prompt.arguments or []}
    messages = await prompt.render(args, None)  # type: ignore[arg-type]
    text = messages[0].content.text  # type: ignore[index, union-attr]
    assert len(text) > 60
    for value in args.values():
        assert value in text


@pytest.mark.anyio
async def test_a_missing_required_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="subject"):
        await BY_NAME["market_analysis_prompt"].sdk.render({"depth": "deep"}, None)  # type: ignore[arg-type]
    required = [a.name for a in BY_NAME["hunt_academic_prompt"].sdk.arguments or [] if a.required]
    assert required == ["query"]
