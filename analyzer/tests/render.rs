//! The HTML report of the real lock sample rendered by headless Chromium
//! (`bench/render-report.sh`): the PNG must exist and show something — many
//! colours and a fair share of non-white pixels (tables, bars, the lock graph).
//! Skipped, loudly, where no Chromium is installed.

use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn report_of_the_locks_sample_renders_to_a_png_that_is_not_blank() {
    let tmp = tempfile::tempdir().unwrap();
    let png_path = tmp.path().join("report.png");
    let out = Command::new("bash")
        .arg(format!("{ROOT}/bench/render-report.sh"))
        .arg(format!("{ROOT}/testdata/locks-pg15"))
        .arg(&png_path)
        .env("DBFLIGHT", assert_cmd::cargo::cargo_bin("dbflight"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        eprintln!("SKIPPED: {stderr}");
        println!("SKIPPED: no chromium: the report was not rendered (apt-get install chromium)");
        return;
    }
    assert!(out.status.success(), "render-report.sh failed: {stderr}");

    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 4000));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels = buf[..info.buffer_size()].chunks_exact(channels);
    let total = pixels.len();
    let mut colours = std::collections::HashSet::new();
    let mut ink = 0;
    let mut blue = 0;
    for p in pixels {
        let (r, g, b) = (p[0], p[1], p[2]);
        colours.insert((r, g, b));
        if (r, g, b) != (255, 255, 255) {
            ink += 1;
        }
        // The bars of the charts are a saturated blue.
        if b > 120 && r < 100 && g < 160 {
            blue += 1;
        }
    }
    assert!(colours.len() > 50, "{} colours: blank?", colours.len());
    assert!(
        ink * 50 > total,
        "{ink} of {total} pixels not white: blank?"
    );
    assert!(blue > 5_000, "{blue} chart-blue pixels: no charts drawn?");
}
