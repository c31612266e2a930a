"""The MLflow UI in a real browser: Debian's headless Chromium, driven through its chromedriver by
Selenium. A tiny real sweep is exported with its models and imported into a fresh store; `harness
ui` on that store lists the sweep's parent with its children (each with its dataset and model), and
a child's page shows its model, its dataset and its system metrics.

HARNESS_SCREENSHOTS=<folder> also saves what the browser saw there; the README's pictures come from
`HARNESS_SCREENSHOTS=reports/ui .venv/bin/python -m pytest tests/test_ui_browser.py`. Skipped where
Chromium, chromedriver or Selenium is missing, except under HARNESS_REQUIRE_BROWSER=1 (.ci/run
installs them and sets it), which fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, tracking
from conftest import fresh_store, wait_for_ui, free_port
from test_sweep import grid_file, run_sweep

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"no browser to drive: {', '.join(missing)} missing (Debian: apt install chromium chromium-driver)"
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message}; HARNESS_REQUIRE_BROWSER=1 makes this a failure, not a skip", pytrace=False)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # no driver download: Debian's
    yield driver
    driver.quit()


def shoot(driver, name: str) -> None:
    folder = os.environ.get("HARNESS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_the_ui_shows_an_imported_sweeps_runs_with_model_dataset_and_system_metrics(tmp_path, real_cifar, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    path = grid_file(tmp_path, real_cifar, axes="{model.activation: [relu]}", images=2048, models="final",
                     system_metrics_s=1)  # 2,048 images: an epoch long enough for a sample or two
    assert run_sweep(path, f"sqlite:///{tmp_path}/optuna.db", fresh_store(tmp_path / "mlflow.db")) == 0
    runs_file = tmp_path / "tiny.runs.zip"
    assert cli.main(["export", "tiny", "--models", "--out", str(runs_file), "--storage", f"sqlite:///{tmp_path}/optuna.db",
                     "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    uri = fresh_store(elsewhere / "mlruns" / "mlflow.db")
    assert cli.main(["import", str(runs_file), "--tracking-uri", uri]) == 0
    children = [r for r in tracking.find_runs(uri, "tiny") if r.tags.get("sweep_role") != "parent"]
    child = children[0]
    model = tracking.run_model(uri, child.run_id)
    assert len(children) == 2 and model is not None and "system/cpu_utilization_percentage" in child.metrics

    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", "--port", str(port), "--uri", uri],
                          cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ui(port, ui)
        experiment = tracking.experiments(uri)["tiny"][0]
        base = f"http://127.0.0.1:{port}/#/experiments/{experiment}"
        wait = WebDriverWait(browser, 120)

        # The runs page: the parent, expanded, above its two children, each with its dataset and model.
        browser.get(f"{base}/runs?workflowType=machine_learning")
        wait.until(shown.element_to_be_clickable((By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']"))).click()
        names = wait.until(lambda d: sorted(e.text for e in d.find_elements(By.XPATH, "//a[span[starts-with(text(), 'convnet4')]]")
                                            if e.text) or None)
        assert len(names) == 2 and all(n.startswith("convnet4-relu") for n in names)
        assert browser.find_elements(By.XPATH, "//a[span[text()='tiny']]")
        table = browser.find_element(By.CSS_SELECTOR, "[role='grid'], [role='treegrid']").text
        assert table.count("cifar10") == 2  # the dataset column, from the imported dataset inputs
        _close_assistant(browser)
        shoot(browser, "runs.png")

        # A child's page: its model (by id), its dataset and its system metrics.
        browser.get(f"{base}/runs/{child.run_id}?workflowType=machine_learning")
        link = wait.until(shown.visibility_of_element_located((By.XPATH, f"//a[contains(@href, '/models/{model.model_id}')]")))
        text = browser.find_element(By.TAG_NAME, "body").text
        assert link.text == tracking.MODEL_NAME and "system/cpu_utilization_percentage" in text
        [dataset] = tracking.run_datasets(uri, child.run_id)  # "cifar10 <train>/<val>/<test>"
        assert f"{dataset['name']} ({child.tags['dataset_sha256'][:tracking.DIGEST_CHARS]})" in text  # the Datasets panel
        _close_assistant(browser)
        shoot(browser, "run.png")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        shoot(browser, "run_model.png")
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def _close_assistant(driver) -> None:
    """MLflow 3.17 opens an assistant panel over a third of the page; a screenshot is clearer without it."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button[data-component-id='mlflow.assistant.chat_panel.close']"):
        button.click()

