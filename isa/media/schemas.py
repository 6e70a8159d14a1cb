"""The media tools' fixed vocabularies: image types (the original's), what each needs, and the prompt it wraps."""

from __future__ import annotations

from typing import Literal

ImageType = Literal[
    "text_to_image",
    "image_to_image",
    "sticker",
    "emoji",
    "professional_headshot",
    "face_swap",
    "style_transfer",
    "inpainting",
    "outpainting",
]
DetailLevel = Literal["brief", "detailed", "comprehensive"]
OcrMethod = Literal["auto", "local", "vision"]

# Types that edit an input image (init_image_url), and face swap's second face (target_image_url).
NEEDS_IMAGE = frozenset(
    {"image_to_image", "professional_headshot", "face_swap", "style_transfer", "inpainting", "outpainting"}
)
NEEDS_TARGET = frozenset({"face_swap"})

# The caller's prompt inside a type-specific instruction (the dream app's prompts ask for the same framing).
IMAGE_TYPE_PROMPTS: dict[str, str] = {
    "text_to_image": "{prompt}",
    "image_to_image": "{prompt}",
    "sticker": "A die-cut sticker with a clean white outline on a plain background: {prompt}",
    "emoji": "A single expressive emoji icon, flat and centred on a plain background: {prompt}",
    "professional_headshot": (
        "Turn this photo into a professional headshot (studio lighting, neutral background, business attire); "
        "keep the person's identity: {prompt}"
    ),
    "face_swap": "Swap the face from the target image onto the person in this image, matching light and angle: "
    "{prompt}",
    "style_transfer": "Restyle this image, keeping its composition: {prompt}",
    "inpainting": "Edit the marked or described region of this image, leaving the rest unchanged: {prompt}",
    "outpainting": "Extend this image beyond its borders, continuing the scene seamlessly: {prompt}",
}

DETAIL_INSTRUCTIONS = {
    "brief": "Describe this image in one or two sentences.",
    "detailed": "Describe this image in a detailed paragraph: subjects, setting, colours, composition, any text.",
    "comprehensive": (
        "Describe this image comprehensively: every notable subject and object, their positions, the setting, "
        "lighting, colours, style, composition, any visible text, and the overall mood."
    ),
}

OBJECTS_INSTRUCTION = (
    "List the {what} visible in this image. Answer only JSON: "
    '{{"objects": [{{"label": str, "confidence": number 0..1, "box": [left, top, right, bottom]}}]}} '
    "with box coordinates as fractions of the image width and height (0..1)."
)
EMOTION_INSTRUCTION = (
    "Analyse the emotions shown in this image (faces, body language, overall mood). Answer only JSON: "
    '{"faces": [{"emotion": str, "confidence": number 0..1, "box": [left, top, right, bottom]}], '
    '"overall_mood": str, "summary": str} with box coordinates as fractions of the image (0..1).'
)
OCR_INSTRUCTION = (
    "Transcribe all text in this image exactly, line by line, in reading order{lang}. Answer only JSON: "
    '{{"lines": [str]}}.'
)
COMPARE_INSTRUCTION = (
    "Compare the first image with the second on: {aspects}. Answer only JSON: "
    '{{"similarities": [str], "differences": [str], "aspects": {{aspect: str}}, "similarity_score": number 0..1, '
    '"summary": str}}.'
)
