"""A locust load test of a translation endpoint: point it at any deployment.

    locust -f bench/locustfile.py --host http://127.0.0.1:8000 --headless -u 16 -r 8 --run-time 60s
    locust -f bench/locustfile.py --host https://translate.example.com --image photo.jpg --resolution full

Each simulated user asks GET /info once (the directions the endpoint serves, and whether it needs a
token: set CROSSNET_SERVE_TOKEN), then posts the image to POST /translate back to back, alternating the
served directions. An answer counts as a success only if it is 200 with a PNG body; a 503 (overloaded)
is a failure named as such, so the report separates backpressure from faults. `bench/load_test.py`
runs it against a local endpoint on 127.0.0.1 and prints the summary.
"""

from __future__ import annotations

import io
import itertools
import os

from locust import FastHttpUser, constant, events, task

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--image", default="", help="PNG/JPEG file to send (default: a 64x64 crop of a sample photo)")
    parser.add_argument("--resolution", default="model", choices=["model", "full"], help="the endpoint's resolution=")


def _default_image() -> bytes:
    from PIL import Image
    from skimage import data  # ships its sample photos with the package

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


class TranslateUser(FastHttpUser):
    wait_time = constant(0)  # closed loop: each user sends its next request when the last one is answered

    def on_start(self) -> None:
        options = self.environment.parsed_options
        token = os.environ.get("CROSSNET_SERVE_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        if options.image:
            with open(options.image, "rb") as f:
                self.image = f.read()
        else:
            self.image = _default_image()
        self.content_type = "image/png" if self.image.startswith(PNG_SIGNATURE) else "image/jpeg"
        self.resolution = options.resolution
        with self.client.get("/info", headers=self.headers, name="/info", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"/info answered {response.status_code}")
                directions = ["a2b"]
            else:
                directions = response.json()["directions"]
        self.directions = itertools.cycle(directions)

    @task
    def translate(self) -> None:
        direction = next(self.directions)
        with self.client.post(f"/translate?direction={direction}&resolution={self.resolution}", data=self.image,
                              headers={**self.headers, "Content-Type": self.content_type},
                              name=f"/translate {direction}", catch_response=True) as response:
            if response.status_code == 503:
                response.failure("503 overloaded (backpressure)")
            elif response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif not response.content.startswith(PNG_SIGNATURE):
                response.failure("200 without a PNG body")
            else:
                response.success()
