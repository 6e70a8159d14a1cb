"""The images, vision and audio tools end to end: a role-"all" node over real HTTP, the SDK's MCP client, files
uploaded through the files route, the node's own model gateway in front of the OpenAI-wire fake on loopback, and
real image and audio bytes made in the test."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import wave
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isa.app import create_app
from isa.core.settings import ServicesSettings, Settings
from tests.support.agent import new_user
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply, model_section
from tests.support.mcp_servers import mcp_client, serve_asgi, settings_with, sql
from tests.support.procs import free_port, wait_for
from tests.support.web_pages import Listener, listener

__all__ = ["listener"]
SECRET = "media-test-secret-0123456789abcdef-xyz"
TOOLS = {
    "generate_image",
    "analyze_image",
    "describe_image",
    "extract_text_from_image",
    "identify_objects_in_image",
    "analyze_image_emotion",
    "compare_two_images",
    "get_vision_capabilities",
    "transcribe_audio",
    "get_audio_capabilities",
}
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


# -- real bytes ---------------------------------------------------------------------------------------------------


def text_png(text: str) -> bytes:
    image = Image.new("RGB", (520, 100), "white")
    ImageDraw.Draw(image).text((20, 25), text, fill="black", font=ImageFont.truetype(FONT, 40))
    return encode(image, "PNG")


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def photo(fmt: str, colour: str = "teal") -> bytes:
    return encode(Image.new("RGB", (64, 48), colour), fmt)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A small valid PNG whose header claims width x height pixels (checked before any pixel is decoded)."""
    data = bytearray(photo("PNG"))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
ASSETS = {
    "/photo.webp": (photo("WEBP", "orange"), "image/webp"),
    "/logo.svg": (SVG, "image/svg+xml"),
    "/speech.wav": (wav(1.5), "audio/wav"),
    "/long.wav": (wav(12), "audio/wav"),
}


@dataclass
class Node:
    url: str
    db_url: str
    user: str
    key: str
    other_key: str
    assets: str


def upload(node: Node, data: bytes, name: str, ctype: str, key: str | None = None, user: str | None = None) -> str:
    user, key = user or node.user, key or node.key
    response = httpx.post(
        f"{node.url}/api/v1/users/{user}/files",
        files={"file": (name, data, ctype)},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["data"]["file_id"])


def credits(node: Node) -> str:
    return str(
        sql(node.db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", (node.user,))[0]["credits_remaining"]
    )


@pytest.fixture(scope="module")
def assets() -> Iterator[tuple[str, int]]:
    async def serve(request: Request) -> Response:
        body, ctype = ASSETS[request.url.path]
        return Response(body, media_type=ctype)

    port = free_port()
    app = Starlette(routes=[Route(path, serve) for path in ASSETS])
    with serve_asgi(app, port=port) as url:
        yield url, port


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _node(settings: Settings, db_url: str, assets: tuple[str, int], model: dict[str, Any] | None, **media: Any) -> Any:
    """A role-"all" node whose model client reaches its own gateway (model_url = itself) as the calling user."""
    port = free_port()
    sections: dict[str, dict[str, Any]] = {
        "auth": {"token_secret": SECRET},
        "media": {"allow_hosts": [f"127.0.0.1:{assets[1]}", *media.pop("hosts", [])], **media},
    }
    if model is not None:
        sections["model"] = model
    on = settings_with(settings, **sections)
    on = on.model_copy(update={"services": ServicesSettings(model_url=f"http://127.0.0.1:{port}")})
    return port, create_app(on, "all", database_url=db_url)


@pytest.fixture(scope="module")
def bare(settings: Settings, db_url: str, assets: tuple[str, int]) -> Iterator[Node]:
    """No provider keys at all: the stock model settings, whose deployments all need keys that are not set."""
    for name in ("OPENAI_API_KEY", "REPLICATE_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        assert not os.environ.get(name), f"{name} must not be set for this test"
    port, app = _node(settings, db_url, assets, None)
    user, key = new_user(db_url, settings, credits=50)
    _other, other_key = new_user(db_url, settings, credits=50)
    with serve_asgi(app, port=port) as url:
        yield Node(url, db_url, user, key, other_key, assets[0])


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str, assets: tuple[str, int], fake: FakeOpenAI) -> Iterator[Node]:
    """The fake provider behind the node's gateway: vision on "main", images on "img", "flux-kontext-pro" and
    "sticker-maker" (face-swap has no deployment), speech on "stt"."""
    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    kontext = {"name": "flux-kontext-pro", "model": "kontext-fake", "provider": "alpha", "mode": "image"}
    sticker = {"name": "sticker-maker", "model": "sticker-fake", "provider": "alpha", "mode": "image"}
    model = model_section(fake, fallbacks={}, num_retries=0, extra_deployments=[kontext, sticker])
    port, app = _node(settings, db_url, assets, model, hosts=[f"127.0.0.1:{fake.port}"], max_audio_seconds=10)
    user, key = new_user(db_url, settings, credits=100)
    _other, other_key = new_user(db_url, settings, credits=50)
    with serve_asgi(app, port=port) as url:
        yield Node(url, db_url, user, key, other_key, assets[0])


async def call(node: Node, tool: str, args: dict[str, Any], key: str | None = None) -> Any:
    async with mcp_client(node.url, key or node.key) as client:
        return await client.call_tool(tool, args)


def error_text(result: Any) -> str:
    assert result.is_error, result
    return json.dumps(result.structured_content) + " ".join(getattr(c, "text", "") for c in result.content)


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    assert result.structured_content is not None
    return dict(result.structured_content["data"])


# -- no provider: the check of issue 18 ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_ten_media_tools_are_listed_over_mcp(bare: Node) -> None:
    async with mcp_client(bare.url, bare.key) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names >= TOOLS


def test_discovery_finds_the_media_tools_for_image_and_audio_requests(bare: Node) -> None:
    auth = {"Authorization": f"Bearer {bare.key}"}
    # Discovery is searchable once the node says ready (the catalog's first sync, issue 26).
    wait_for(lambda: httpx.get(bare.url + "/health/ready", timeout=5).status_code == 200, timeout=60)
    wanted = {
        "generate an image of a cat wearing a hat": "generate_image",
        "read the text in this scanned receipt": "extract_text_from_image",
        "transcribe this voice memo": "transcribe_audio",
    }
    for request, tool in wanted.items():
        r = httpx.post(bare.url + "/discover", json={"request": request}, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        names = [t["name"] for t in r.json()["capabilities"]["tools"][:3]]
        assert tool in names, (request, names)


@pytest.mark.anyio
async def test_the_dream_prompts_hand_over_to_generate_image_with_their_image_type(bare: Node) -> None:
    async with mcp_client(bare.url, bare.key) as client:
        sticker = await client.get_prompt("sticker_generation_prompt", {"prompt": "a fox"})
        swap = await client.get_prompt("face_swap_prompt", {"hair_source": "keep"})
    text = " ".join(getattr(m.content, "text", "") for m in sticker.messages)
    assert "generate_image tool" in text and 'image_type="sticker"' in text and "init_image_url" not in text
    text = " ".join(getattr(m.content, "text", "") for m in swap.messages)
    assert 'image_type="face_swap"' in text and "init_image_url" in text


@pytest.mark.anyio
async def test_a_png_uploaded_by_file_id_is_read_by_local_ocr_with_no_provider(bare: Node) -> None:
    file_id = upload(bare, text_png("INVOICE 4711"), "invoice.png", "image/png")
    out = data(await call(bare, "extract_text_from_image", {"image_path": file_id}))
    assert "4711" in out["text"] and "INVOICE" in out["text"]
    assert out["method"] == "local" and out["engine"] == "tesseract"
    line = out["lines"][0]
    assert line["text"] == "INVOICE 4711" and len(line["box"]) == 4 and line["box"][2] > line["box"][0]
    assert "not_configured" in out["note"]  # the vision path was tried on the gateway and is not set up


@pytest.mark.anyio
async def test_generate_image_without_a_provider_says_not_configured_and_charges_nothing(bare: Node) -> None:
    before = credits(bare)
    text = error_text(await call(bare, "generate_image", {"prompt": "a red bicycle"}))
    assert "not_configured" in text and "credentials" in text
    assert credits(bare) == before


@pytest.mark.anyio
async def test_vision_and_transcription_without_a_provider_say_not_configured(bare: Node) -> None:
    file_id = upload(bare, photo("PNG"), "p.png", "image/png")
    assert "not_configured" in error_text(await call(bare, "describe_image", {"image_path": file_id}))
    mp3ish = upload(bare, b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 64, "x.mp3", "audio/mpeg")
    text = error_text(await call(bare, "transcribe_audio", {"audio": mp3ish, "language": "en"}))
    assert "invalid_audio" in text or "not_configured" in text


@pytest.mark.anyio
async def test_speech_is_transcribed_by_the_local_model_when_there_is_no_provider(bare: Node) -> None:
    spoken = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "130", "--stdout", "one two three four five"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    file_id = upload(bare, spoken, "count.wav", "audio/wav")
    out = data(await call(bare, "transcribe_audio", {"audio": file_id}))
    assert out["model"] == "local" and out["engine"] == "pocketsphinx" and "not_configured" not in out["text"]
    assert out["text"] == "one two three four five", out
    assert "credentials" in out["note"]  # the provider path was tried first and named what is missing
    caps = data(await call(bare, "get_audio_capabilities", {}))
    assert caps["local_transcription"]["available"] is True and caps["operations"]["transcribe_audio"] is True


@pytest.mark.anyio
async def test_another_users_file_id_is_refused_as_not_found(bare: Node) -> None:
    file_id = upload(bare, text_png("SECRET 1234"), "mine.png", "image/png")
    text = error_text(await call(bare, "extract_text_from_image", {"image_path": file_id}, key=bare.other_key))
    assert "not_found" in text and "1234" not in text


@pytest.mark.anyio
async def test_server_paths_and_other_schemes_are_refused(bare: Node) -> None:
    for source in ("/etc/passwd", "file:///etc/passwd", "../../x.png", "ftp://example.org/a.png"):
        text = error_text(await call(bare, "extract_text_from_image", {"image_path": source}))
        assert "invalid_source" in text, source


@pytest.mark.anyio
async def test_a_url_to_a_refused_address_is_blocked_and_reaches_nothing(bare: Node, listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/x.png"
    assert "blocked" in error_text(await call(bare, "extract_text_from_image", {"image_path": url}))
    assert listener.connections == 0


@pytest.mark.anyio
async def test_truncated_bomb_and_svg_images_are_refused_before_anything_is_sent(bare: Node) -> None:
    truncated = upload(bare, text_png("CUT SHORT")[:-200], "cut.png", "image/png")
    assert "invalid_image" in error_text(await call(bare, "extract_text_from_image", {"image_path": truncated}))
    bomb = upload(bare, png_bomb(), "bomb.png", "image/png")
    assert "too_large" in error_text(await call(bare, "extract_text_from_image", {"image_path": bomb}))
    svg = error_text(await call(bare, "extract_text_from_image", {"image_path": bare.assets + "/logo.svg"}))
    assert "unsupported_image" in svg and "SVG" in svg


# -- with a provider (the fake behind the node's own gateway) ---------------------------------------------------------


@pytest.mark.anyio
async def test_generate_image_stores_the_result_in_your_files_and_charges_per_image(
    node: Node, fake: FakeOpenAI
) -> None:
    fake.reset()
    fake.script("sticker-fake", Reply(image_format="b64_json"))
    before = credits(node)
    result = await call(node, "generate_image", {"prompt": "a sticker of a fox", "image_type": "sticker", "count": 2})
    out = data(result)
    assert out["image_type"] == "sticker" and out["count"] == 2 and len(out["file_ids"]) == 2
    sent = fake.requests_for("sticker-fake")[-1].body
    assert sent["n"] == 2 and "die-cut sticker" in sent["prompt"] and "a sticker of a fox" in sent["prompt"]
    rows = sql(
        node.db_url, "SELECT user_id, content_type, status FROM files WHERE id = ANY(%s::uuid[])", (out["file_ids"],)
    )
    assert [(r["user_id"], r["content_type"], r["status"]) for r in rows] == [(node.user, "image/png", "ready")] * 2
    link = out["images"][0]["url"]  # local storage signs a path on this node; S3 signs an absolute link
    got = httpx.get(node.url + link if link.startswith("/") else link, timeout=10)
    assert got.status_code == 200 and got.content == base64.b64decode(fake_png())
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 2 and images[0].mime_type == "image/png"
    wait_for(lambda: float(credits(node)) <= float(before) - 10, timeout=10)  # 5 credits per image


def fake_png() -> str:
    from tests.support.fake_openai import PNG_1X1

    return PNG_1X1


@pytest.mark.anyio
async def test_a_url_image_answer_is_fetched_through_the_guard_and_stored(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    fake.script("dall-e-3", Reply(image_format="url"))
    before = fake.image_downloads
    out = data(await call(node, "generate_image", {"prompt": "a lighthouse"}))
    assert fake.image_downloads == before + 1 and out["images"][0]["mime_type"] == "image/png"
    assert out["images"][0]["width"] == 1 and out["model"] == "image"


@pytest.mark.anyio
async def test_image_to_image_is_routed_to_its_deployment_with_the_input_image(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    fake.script("kontext-fake", Reply(image_format="b64_json"))
    source = upload(node, photo("JPEG"), "me.jpg", "image/jpeg")
    args = {"prompt": "in watercolour", "image_type": "style_transfer", "init_image_url": source, "strength": 0.4}
    out = data(await call(node, "generate_image", args))
    assert out["model"] == "flux-kontext-pro"
    sent = fake.requests_for("kontext-fake")[-1].body
    assert sent["image"].startswith("data:image/jpeg;base64,") and sent["strength"] == 0.4
    assert base64.b64decode(sent["image"].split(",", 1)[1]) == photo("JPEG")
    assert fake.count("dall-e-3") == 0


@pytest.mark.anyio
async def test_an_image_type_without_a_deployment_or_input_is_refused_clearly(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    source = upload(node, photo("PNG"), "a.png", "image/png")
    missing = error_text(
        await call(node, "generate_image", {"prompt": "x", "image_type": "face_swap", "init_image_url": source})
    )
    assert "invalid_request" in missing and "target_image_url" in missing
    args = {"prompt": "x", "image_type": "face_swap", "init_image_url": source, "target_image_url": source}
    text = error_text(await call(node, "generate_image", args))
    assert "not_configured" in text and "face-swap" in text and fake.count() == 0


@pytest.mark.anyio
async def test_describe_image_sends_the_checked_image_to_the_vision_model(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    fake.script("gpt-4o-mini", Reply(text="An orange square."))
    out = data(await call(node, "describe_image", {"image_path": node.assets + "/photo.webp", "detail_level": "brief"}))
    assert out["description"] == "An orange square." and out["model"] == "vision"
    parts = fake.requests_for("gpt-4o-mini")[-1].body["messages"][0]["content"]
    assert parts[0]["type"] == "text" and "one or two sentences" in parts[0]["text"]
    assert parts[1]["image_url"]["url"].startswith("data:image/webp;base64,")


@pytest.mark.anyio
async def test_objects_emotion_and_comparison_come_back_structured(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    objects = {"objects": [{"label": "cup", "confidence": 0.9, "box": [0.1, 0.2, 0.3, 0.4]}]}
    emotion = {
        "faces": [{"emotion": "joy", "confidence": 0.8, "box": [0, 0, 1, 1]}],
        "overall_mood": "happy",
        "summary": "s",
    }
    compare = {"similarities": ["size"], "differences": ["colour"], "similarity_score": 0.5, "summary": "d"}
    fake.script("gpt-4o-mini", *(Reply(text=json.dumps(x)) for x in (objects, emotion, compare)))
    first = upload(node, photo("PNG", "red"), "r.png", "image/png")
    second = upload(node, photo("JPEG", "blue"), "b.jpg", "image/jpeg")
    found = data(await call(node, "identify_objects_in_image", {"image_path": first, "object_type": "cups"}))
    assert found["objects"] == objects["objects"] and found["count"] == 1
    mood = data(await call(node, "analyze_image_emotion", {"image_path": first}))
    assert mood["overall_mood"] == "happy" and mood["faces"][0]["emotion"] == "joy"
    diff = data(
        await call(
            node, "compare_two_images", {"image1_path": first, "image2_path": second, "comparison_aspects": ["colour"]}
        )
    )
    assert diff["differences"] == ["colour"] and diff["comparison_aspects"] == ["colour"]
    sent = fake.requests_for("gpt-4o-mini")
    assert "cups" in sent[0].body["messages"][0]["content"][0]["text"]
    assert sent[0].body["response_format"] == {"type": "json_object"}
    assert [p["type"] for p in sent[2].body["messages"][0]["content"]] == ["text", "image_url", "image_url"]


@pytest.mark.anyio
async def test_ocr_uses_the_vision_model_when_there_is_one(node: Node, fake: FakeOpenAI) -> None:
    fake.reset()
    fake.script("gpt-4o-mini", Reply(text=json.dumps({"lines": ["INVOICE 4711", "Total 12.50"]})))
    file_id = upload(node, text_png("INVOICE 4711"), "i.png", "image/png")
    out = data(await call(node, "extract_text_from_image", {"image_path": file_id}))
    assert out["method"] == "vision" and out["text"] == "INVOICE 4711\nTotal 12.50"
    local = data(await call(node, "extract_text_from_image", {"image_path": file_id, "method": "local"}))
    assert local["method"] == "local" and "4711" in local["text"] and fake.count() == 1


@pytest.mark.anyio
async def test_transcribe_audio_uploads_the_checked_audio_and_enforces_the_duration_limit(
    node: Node, fake: FakeOpenAI
) -> None:
    fake.reset()
    fake.script("whisper-1", Reply(text="hello from the test"))
    file_id = upload(node, wav(1.5), "speech.wav", "audio/wav")
    out = data(await call(node, "transcribe_audio", {"audio": file_id, "language": "en"}))
    assert out["text"] == "hello from the test" and out["duration_seconds"] == 1.5 and out["mime_type"] == "audio/wav"
    sent = fake.requests_for("whisper-1")[-1].body
    assert sent["_files"] == ["file"] and sent["language"] == "en"
    assert "too_long" in error_text(await call(node, "transcribe_audio", {"audio": node.assets + "/long.wav"}))
    not_audio = upload(node, photo("PNG"), "x.png", "image/png")
    assert "unsupported_audio" in error_text(await call(node, "transcribe_audio", {"audio": not_audio}))
    assert fake.count("whisper-1") == 1


@pytest.mark.anyio
async def test_vision_capabilities_name_the_routes_and_the_local_ocr(node: Node) -> None:
    caps = data(await call(node, "get_vision_capabilities", {}))
    assert caps["local_ocr"]["engine"] == "tesseract" and caps["local_ocr"]["available"] is True
    assert caps["image_types"]["face_swap"] == {"model": "face-swap", "needs_init_image": True, "needs_target": True}
    assert caps["operations"]["generate_image"] is True
