"""The textbook bot: what a Slack AI bot looks like in a tutorial, beside propbot in the benchmark. A slack-bolt
`AsyncApp` whose mention listener asks the model once (the openai SDK, no tools, no state) and says its answer in
the thread. `python -m bench.textbook_bot`, configured like bench.bare_bolt plus OPENAI_BASE_URL / OPENAI_API_KEY.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web
from openai import AsyncOpenAI
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.say.async_say import AsyncSay
from slack_sdk.web.async_client import AsyncWebClient

from bench.bare_bolt import serve, web_app


def build() -> web.Application:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    bolt = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])
    model = AsyncOpenAI(api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"])

    @bolt.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        answer = await model.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": str(event.get("text") or "")}]
        )
        await say(text=answer.choices[0].message.content or "", thread_ts=event["ts"])

    return web_app(bolt)


async def main() -> None:
    await serve(build())


if __name__ == "__main__":
    asyncio.run(main())
