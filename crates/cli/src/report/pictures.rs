//! The book's pictures from runs: lineage's pages rendered by headless
//! Chromium, and step 7's screenshot of the order page.

use std::path::Path;

use anyhow::Context as _;
use stitch_model::{CheckRun, StageData};

use super::{BROWSER_PAGE, BROWSER_TRACE, images_dir, write};

/// Step 7's pictures: the order page as the browser showed it, and one of its
/// orders in lineage, from the page to the consumer.
pub(super) fn browser_pictures(run: &CheckRun) -> anyhow::Result<()> {
    let evidence = run.evidence.as_ref().context("the browser stage measured nothing")?;
    let StageData::Browser(browser) = evidence else {
        anyhow::bail!("the browser step's stage measured something other than the browser");
    };
    let page = browser.page_screenshot.as_ref().context("the browser stage took no screenshot of the page")?;
    std::fs::copy(page, images_dir().join(BROWSER_PAGE)).with_context(|| format!("copying {}", page.display()))?;
    screenshot(super::sample_page(run)?, &images_dir().join(BROWSER_TRACE))
}

/// Renders `html` in headless Chromium and saves a PNG.
pub(super) fn screenshot(html: &str, png: &Path) -> anyhow::Result<()> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            duct::cmd!("which", name)
                .stdout_null()
                .stderr_null()
                .unchecked()
                .run()
                .is_ok_and(|out| out.status.success())
        })
        .context("no headless Chromium for the book's pictures: `apt-get install chromium`")?;
    let dir = stitch_paths::run_dir().join("report");
    std::fs::create_dir_all(&dir)?;
    let name = png.with_extension("html");
    let name = name.file_name().with_context(|| format!("{} names no file", png.display()))?;
    let page = dir.join(name);
    write(&page, html)?;
    let profile = dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    duct::cmd!(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,760",
        format!("--screenshot={}", png.display()),
        format!("file://{}", page.display())
    )
    .stdout_null()
    .stderr_null()
    .run()
    .with_context(|| format!("screenshotting {}", page.display()))?;
    Ok(())
}
