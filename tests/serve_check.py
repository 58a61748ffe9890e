#!/usr/bin/env python3
"""Drives `qkv serve` from outside, as its users do (called by tests/serve_test.cpp).

  serve_check.py api  QKV RUN_DIR WORK_DIR   the openai client against `qkv generate`, every bad
                                             request, the API key, SIGTERM, a restart on the port
  serve_check.py page QKV RUN_DIR WORK_DIR   a real browser (Selenium, chromedriver) on the page:
                                             the grid against `qkv attention`, the formula, a
                                             streamed generation; a screenshot in WORK_DIR

Prints "serve_check MODE: all passed" at the end; any failure raises.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

mode, qkv, run_dir, work = sys.argv[1:5]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, port=None):
        self.port = port or free_port()
        self.log = open(os.path.join(work, f"serve_{self.port}.log"), "ab")
        self.proc = subprocess.Popen([qkv, "serve", run_dir, "--port", str(self.port),
                                      "--threads", "1", *args], stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while True:
            try:
                status, _ = self.request("GET", "/api/info", headers=self.auth(args))
                if status in (200, 401):
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, f"qkv serve exited with {self.proc.returncode}"
            assert time.time() < deadline, "qkv serve did not answer within 60 s"
            time.sleep(0.2)

    @staticmethod
    def auth(args):
        return {"Authorization": "Bearer " + args[args.index("--api-key") + 1]} \
            if "--api-key" in args else {}

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return r.status, payload

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self.log.close()
        return code


def generate(prompt, n, temperature, seed, top_k=0, top_p=1.0):
    out = subprocess.run([qkv, "generate", run_dir, "--prompt", prompt, "--max-new-tokens", str(n),
                          "--temperature", str(temperature), "--seed", str(seed), "--top-k",
                          str(top_k), "--top-p", str(top_p), "--threads", "1"],
                         check=True, capture_output=True).stdout.decode()
    assert out.startswith(prompt) and out.endswith("\n"), out
    return out[len(prompt):-1]


def expect_error(server, status, method, path, body=None, raw=None, headers=None, says=""):
    got, payload = server.request(method, path, body=body, raw=raw, headers=headers)
    assert got == status, f"{method} {path}: {got} (expected {status}): {payload[:300]}"
    error = json.loads(payload)["error"]
    assert says in error["message"] and error["code"] == status, error
    # ... and the server goes on serving.
    ok, _ = server.request("GET", "/v1/models", headers=headers)
    assert ok == 200, f"after {method} {path} the server answered {ok}"
    print(f"  {status} for {method} {path}: {error['message'][:90]}")


def check_api():
    import openai
    server = Server("--max-tokens", "64", "--max-body-bytes", "4096")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused")
    ids = [m.id for m in client.models.list().data]
    assert ids == ["run", "run:step_0000100.pt", "run:last.pt", "run:best.pt"], ids

    for prompt, temperature, top_k, top_p, seed in [("The king", 0.8, 20, 0.9, 5),
                                                    ("My lord", 0.0, 0, 1.0, 1),
                                                    ("", 1.0, 0, 1.0, 11)]:
        expected = generate(prompt, 40, temperature, seed, top_k, top_p)
        done = client.completions.create(model="run", prompt=prompt, max_tokens=40,
                                         temperature=temperature, top_p=top_p, seed=seed,
                                         extra_body={"top_k": top_k})
        assert done.choices[0].text == expected, (done.choices[0].text, expected)
        assert done.choices[0].finish_reason == "length"
        assert done.usage.completion_tokens == 40
        stream = client.completions.create(model="run", prompt=prompt, max_tokens=40,
                                           temperature=temperature, top_p=top_p, seed=seed,
                                           extra_body={"top_k": top_k}, stream=True,
                                           stream_options={"include_usage": True})
        pieces, finish, usage = [], None, None
        for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].text)
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == expected, ("".join(pieces), expected)
        assert len(pieces) > 1 and finish == "length" and usage.completion_tokens == 40
        print(f"  completion of {prompt!r} equals qkv generate's, whole and streamed")

    # A stop string ends it, and is not part of the text.
    expected = generate("The king", 40, 0.8, 5, 20, 0.9)
    stop = expected[10:12]
    done = client.completions.create(model="run", prompt="The king", max_tokens=40,
                                     temperature=0.8, top_p=0.9, seed=5, stop=[stop],
                                     extra_body={"top_k": 20})
    assert done.choices[0].text == expected[:expected.index(stop)], done.choices[0].text
    assert done.choices[0].finish_reason == "stop"
    # Another checkpoint by its model id.
    other = client.completions.create(model="run:step_0000100.pt", prompt="The king",
                                      max_tokens=20, temperature=0, seed=1)
    assert other.choices[0].text != generate("The king", 20, 0.0, 1)

    print("bad requests:")
    expect_error(server, 400, "POST", "/v1/completions", raw="{not json", says="not JSON")
    expect_error(server, 400, "POST", "/v1/completions", raw="[1]", says="JSON object")
    expect_error(server, 400, "POST", "/v1/completions", body={"prompt": 5}, says="prompt")
    expect_error(server, 400, "POST", "/v1/completions", body={"max_tokens": "5"},
                 says="max_tokens must be an integer")
    expect_error(server, 400, "POST", "/v1/completions", body={"max_tokens": 65},
                 says="between 1 and 64")
    expect_error(server, 400, "POST", "/v1/completions", body={"prompt": "a" * 60},
                 says="more than the model's context of 48")
    expect_error(server, 400, "POST", "/v1/completions", body={"prompt": "a" * 60, "stream": True},
                 says="more than the model's context")
    expect_error(server, 400, "POST", "/v1/completions", body={"prompt": "\u00e9t\u00e9"},
                 says="prompt")
    expect_error(server, 404, "POST", "/v1/completions", body={"model": "gpt-4"},
                 says="not served here")
    expect_error(server, 400, "POST", "/api/attention", body={"text": ["a"]}, says="text must be")
    expect_error(server, 400, "POST", "/api/explain", body={"text": "ab", "layer": 0, "head": 0,
                                                            "query": 7}, says="query must be in")
    expect_error(server, 404, "POST", "/api/attention", body={"text": "ab", "checkpoint": "x.pt"},
                 says="not one of this model's")
    expect_error(server, 404, "GET", "/v2/nothing", says="no route")
    expect_error(server, 405, "GET", "/v1/completions", says="allowed POST")
    expect_error(server, 405, "DELETE", "/v1/models", says="allowed GET")
    expect_error(server, 413, "POST", "/v1/completions", raw="x" * 10000, says="4096 bytes")

    # A client that leaves mid-stream stops its generation; the next is served.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "The", "max_tokens": 64,
                                                             "stream": True}))
    r = conn.getresponse()
    assert r.status == 200 and r.read(20)
    conn.close()
    assert client.completions.create(model="run", prompt="A", max_tokens=3).usage.total_tokens == 4

    assert server.stop(signal.SIGTERM) == 0, "SIGTERM should end qkv serve with status 0"
    print("  SIGTERM: exit 0")
    # The same port at once, after a clean stop and after a kill.
    again = Server(port=server.port)
    assert again.request("GET", "/v1/models")[0] == 200
    again.stop(signal.SIGKILL)
    keyed = Server("--api-key", "s3cret", port=server.port)
    status, payload = keyed.request("GET", "/v1/models")
    assert status == 401 and "Bearer" in json.loads(payload)["error"]["message"], payload
    assert keyed.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert keyed.request("GET", "/api/info", headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert keyed.request("GET", "/")[0] == 200  # the page itself is public; it asks for the key
    keyed.stop(signal.SIGINT)
    print("  restarted on the same port after SIGTERM and SIGKILL; --api-key enforced")


def check_page():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = Server()
    text = "The queen weeps for the river bank."
    attention_dir = os.path.join(work, "attention")
    subprocess.run([qkv, "attention", run_dir, "--text", text, "--out", attention_dir,
                    "--threads", "1"], check=True, capture_output=True)
    with open(os.path.join(attention_dir, "attention.json")) as f:
        expected = json.load(f)["weights"]

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2400",
                f"--user-data-dir={os.path.join(work, 'chrome-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 60)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/")
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "attention")
        driver.execute_script("delete document.body.dataset.ready")
        box = driver.find_element(By.ID, "text")
        box.clear()
        started = time.time()
        box.send_keys(text)
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "attention")
        print(f"  typing to the attention grid: {time.time() - started:.2f} s "
              f"({len(text)} tokens, typing included)")

        canvases = driver.find_elements(By.CSS_SELECTOR, "#grid canvas")
        assert len(canvases) == len(expected) * len(expected[0]), len(canvases)
        worst = 0.0
        for c in canvases:
            shown = json.loads(c.get_attribute("data-weights"))
            want = expected[int(c.get_attribute("data-layer"))][int(c.get_attribute("data-head"))]
            worst = max(worst, max(abs(a - b) for ra, rb in zip(shown, want)
                                   for a, b in zip(ra, rb)))
        assert worst <= 1e-6, f"the grid differs from qkv attention by {worst}"
        print(f"  the grid's {len(canvases)} heads equal qkv attention --json's (max diff {worst:.1e})")

        # Layer 2, head 2; the cell (query 9, key 4): the formula's weight is the cell's.
        driver.find_element(By.CSS_SELECTOR, '#grid canvas[data-layer="1"][data-head="1"]').click()
        cell = driver.find_element(By.CSS_SELECTOR, '#matrix td[data-q="9"][data-k="4"]')
        shown = float(cell.get_attribute("data-w"))
        assert abs(shown - expected[1][1][9][4]) <= 1e-6
        cell.click()
        weight = wait.until(lambda d: d.find_elements(By.ID, "explain-weight"))[0]
        model_weight = float(driver.find_element(By.ID, "explain-model-weight").text)
        assert abs(float(weight.text) - shown) <= 1e-6, (weight.text, shown)
        assert abs(model_weight - shown) <= 1e-6
        rows = driver.find_elements(By.CSS_SELECTOR, "#explain tr[data-key]")
        assert len(rows) == 10, len(rows)  # keys 0..9: causal
        print(f"  the formula's softmax gives the cell's weight: {float(weight.text):.6f}")

        assert len(driver.find_elements(By.CSS_SELECTOR, "#next li")) == 10

        driver.find_element(By.ID, "max-tokens").clear()
        driver.find_element(By.ID, "max-tokens").send_keys("30")
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: d.find_element(By.ID, "gen-status").get_attribute("data-finish"))
        generated = driver.execute_script("return document.getElementById('generated-text')"
                                          ".textContent")
        assert generated == generate(text, 30, 1.0, 1337), generated
        print("  the streamed generation equals qkv generate's")

        # From a text of 64 characters (the context's length if shorter) entered to the grid
        # drawn: 64 tokens for a char model.
        block = json.loads(server.request("GET", "/api/info")[1])["config"]["block_size"]
        driver.execute_script("delete document.body.dataset.ready;"
                              "document.getElementById('text').value = arguments[0];",
                              ((text + " ") * 2)[:min(64, block)])
        started = time.time()
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "attention")
        print(f"  text entered to the attention grid drawn: {time.time() - started:.3f} s "
              f"({driver.find_element(By.ID, 'token-count').text})")

        driver.find_element(By.ID, "sentences").clear()
        driver.find_element(By.ID, "sentences").send_keys(
            "money | The king speaks of the money bank.\nmoney | My lord loves the money bank.\n"
            "river | The king speaks of the river bank.\nriver | My lord loves the river bank.")
        driver.find_element(By.ID, "embed-run").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pca circle")) == 4)
        shot = os.path.join(work, "serve_page.png")
        driver.save_screenshot(shot)
        print(f"  screenshot: {shot}")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        server.stop()


{"api": check_api, "page": check_page}[mode]()
print(f"serve_check {mode}: all passed")
