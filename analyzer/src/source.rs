//! Where a TRACE argument points, and how it becomes a directory the reader opens.
//!
//! A TRACE is one of:
//!
//! - a trace directory, as `dbflight-record -o` writes it: read in place;
//! - a bundle file (`dbflight bundle`), recognised by its content (a POSIX tar
//!   whose first member is `manifest.json`), never by its name;
//! - an object-store URL (`s3://bucket/prefix`, `gs://bucket/prefix`,
//!   `file:///path`) read through the `object_store` crate DataFusion uses,
//!   with credentials from the usual environment variables (`AWS_*`,
//!   `GOOGLE_*`).
//!
//! Bundles and URLs are copied into a private temporary directory (mode 0700,
//! files 0600, removed when the [`OpenTrace`] is dropped) rather than read in
//! place. Reading Parquet straight out of a tar would need an object store
//! that maps each member to its byte range; unpacking costs one copy of a
//! trace the size of a bug report attachment, and in exchange every check of
//! [`TraceFiles::open`] (manifest, every footer) and every command works on
//! it unchanged. Remote traces are fetched whole for the same reason: every
//! query of a report reads most of the files anyway.

use std::fs::File;
use std::io::{Read, Write};
use std::ops::Deref;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use dbflight_format::MANIFEST_FILE;
use dbflight_format::reader::TraceFiles;
use dbflight_format::writer::{create_private, create_private_dir};
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

/// An opened trace: its files, the name its `trace` column shows, and the
/// temporary copy it lives in when it came from a bundle or a URL.
#[derive(Debug)]
pub struct OpenTrace {
    pub files: TraceFiles,
    /// What the user passed (path or URL), for messages.
    pub origin: String,
    /// Short name: the directory's or bundle's file name, the URL's last segment.
    pub name: String,
    _scratch: Option<tempfile::TempDir>,
}

impl Deref for OpenTrace {
    type Target = TraceFiles;
    fn deref(&self) -> &TraceFiles {
        &self.files
    }
}

/// URL schemes read through object_store.
const SCHEMES: [&str; 4] = ["s3", "gs", "gcs", "file"];

/// The URL in `arg`, when it is one of [`SCHEMES`].
pub fn as_url(arg: &Path) -> Option<url::Url> {
    let text = arg.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    if !SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return None;
    }
    url::Url::parse(text).ok()
}

/// Opens a trace directory, bundle or URL; errors name what was passed and what is wrong.
pub fn open(arg: &Path) -> Result<OpenTrace> {
    if let Some(url) = as_url(arg) {
        return open_url(&url);
    }
    let origin = arg.display().to_string();
    let meta = match std::fs::metadata(arg) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{origin} does not exist: pass the directory written by dbflight-record -o, a \
             bundle file written by dbflight bundle, or an s3://, gs:// or file:// URL"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {origin}")),
        Ok(m) => m,
    };
    let name = file_name(arg);
    if meta.is_dir() {
        let files = TraceFiles::open(arg).context("cannot open the trace")?;
        return Ok(OpenTrace {
            files,
            origin,
            name,
            _scratch: None,
        });
    }
    if !is_tar(arg)? {
        bail!(
            "{origin} is neither a trace directory nor a dbflight bundle (a tar file written by \
             dbflight bundle): pass the directory written by dbflight-record -o or a bundle"
        );
    }
    let scratch = scratch_dir("bundle")?;
    let dir = scratch.path().join("trace");
    unpack_bundle(arg, &dir).with_context(|| format!("cannot read the bundle {origin}"))?;
    let files = TraceFiles::open(&dir)
        .with_context(|| format!("cannot open the trace in the bundle {origin}"))?;
    let name = name
        .strip_suffix(".tar")
        .or_else(|| name.strip_suffix(".dbflight"))
        .unwrap_or(&name)
        .to_string();
    Ok(OpenTrace {
        files,
        origin,
        name,
        _scratch: Some(scratch),
    })
}

fn file_name(path: &Path) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    canonical.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A private (0700) temporary directory, removed on drop.
fn scratch_dir(what: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("dbflight-{what}-"))
        .tempdir()
        .context("cannot create a temporary directory to unpack the trace into")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.path().display()))?;
    }
    Ok(dir)
}

/// True when the file is a POSIX tar (`ustar` magic at offset 257 of the first header).
fn is_tar(path: &Path) -> Result<bool> {
    let mut header = [0u8; 512];
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut read = 0;
    while read < header.len() {
        match f.read(&mut header[read..]) {
            Ok(0) => return Ok(false),
            Ok(n) => read += n,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(&header[257..262] == b"ustar")
}

/// A member path of a bundle, refused unless it is plain and relative
/// (`queries/00000001.parquet`): no `..`, no absolute path, no `.`.
fn member_path(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => bail!("member {} is not a plain relative path", path.display()),
        }
    }
    if out.as_os_str().is_empty() {
        bail!("a member has an empty name");
    }
    Ok(out)
}

/// Unpacks a bundle into `dir` (created 0700; files 0600). The first member
/// must be `manifest.json`; only regular files and directories are accepted.
fn unpack_bundle(bundle: &Path, dir: &Path) -> Result<()> {
    let file = File::open(bundle)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    create_private_dir(dir)?;
    let mut first = true;
    for entry in archive.entries().context("not a tar file")? {
        let mut entry = entry.context("truncated or damaged tar member")?;
        let raw = entry
            .path()
            .context("a member has an unreadable name")?
            .into_owned();
        let rel = member_path(&raw)?;
        let kind = entry.header().entry_type();
        if first {
            if rel != Path::new(MANIFEST_FILE) || !kind.is_file() {
                bail!(
                    "it is a tar file but not a dbflight bundle: its first member is {}, not \
                     {MANIFEST_FILE}",
                    raw.display()
                );
            }
            first = false;
        }
        if kind.is_dir() {
            create_private_dir(&dir.join(&rel))?;
            continue;
        }
        if !kind.is_file() {
            bail!(
                "member {} is not a regular file or a directory",
                raw.display()
            );
        }
        let target = dir.join(&rel);
        if let Some(parent) = target.parent() {
            create_private_dir(parent)?;
        }
        let mut out = create_private(&target)?;
        std::io::copy(&mut entry, &mut out)
            .with_context(|| format!("cannot unpack member {}", raw.display()))?;
    }
    if first {
        bail!("it is an empty tar file, not a dbflight bundle");
    }
    Ok(())
}

/// Writes `trace` as a bundle to `out`: a POSIX tar whose first member is
/// `manifest.json`, then every complete Parquet file of every table in
/// segment order, each member mode 0600. The file is written as `out.tmp`
/// (mode 0600) and renamed into place, so a failed run leaves no half bundle.
pub fn write_bundle(trace: &TraceFiles, out: &Path) -> Result<u64> {
    let mut tmp_name = out.as_os_str().to_os_string();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let file = create_private(&tmp)?;
    let result = (|| -> Result<u64> {
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        builder.mode(tar::HeaderMode::Deterministic);
        let mut members = 0;
        let manifest = trace.dir.join(MANIFEST_FILE);
        append_file(&mut builder, &manifest, Path::new(MANIFEST_FILE))?;
        members += 1;
        for (table, files) in &trace.tables {
            for f in files {
                let name = f
                    .path
                    .file_name()
                    .ok_or_else(|| anyhow!("{} has no file name", f.path.display()))?;
                append_file(&mut builder, &f.path, &Path::new(table.name()).join(name))?;
                members += 1;
            }
        }
        let mut w = builder.into_inner().context("cannot finish the tar")?;
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(members)
    })();
    match result {
        Ok(n) => {
            std::fs::rename(&tmp, out)
                .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.context(format!("cannot write the bundle {}", out.display())))
        }
    }
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, path: &Path, name: &Path) -> Result<()> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    let mut header = tar::Header::new_ustar();
    header.set_size(len);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    builder
        .append_data(&mut header, name, &mut f)
        .with_context(|| format!("cannot add {} to the bundle", path.display()))
}

/// Fetches a trace at an object-store URL into a private temporary directory.
fn open_url(url: &url::Url) -> Result<OpenTrace> {
    let origin = url.to_string();
    let (store, prefix) = store_for(url).map_err(|e| anyhow!("cannot open {origin}: {e}"))?;
    let scratch = scratch_dir("remote")?;
    let dir = scratch.path().join("trace");
    create_private_dir(&dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the download runtime")?;
    // object_store's messages already hold their sources' text: keep only
    // the top one, or `{:#}` prints every nested message twice.
    let fetched = runtime
        .block_on(fetch(store.as_ref(), &prefix, &dir))
        .map_err(|e| anyhow!("cannot read the trace at {origin}: {e:#}"))?;
    if fetched == 0 {
        bail!("{origin} is not a dbflight trace: nothing is stored under it");
    }
    if !dir.join(MANIFEST_FILE).exists() {
        bail!("{origin} is not a dbflight trace: it has no {MANIFEST_FILE}");
    }
    let files =
        TraceFiles::open(&dir).with_context(|| format!("cannot open the trace at {origin}"))?;
    let name = prefix.parts().next_back().map_or_else(
        || url.host_str().unwrap_or("trace").to_string(),
        |p| p.as_ref().to_string(),
    );
    Ok(OpenTrace {
        files,
        origin,
        name,
        _scratch: Some(scratch),
    })
}

/// The store and the prefix inside it for a URL. S3 and GCS read their
/// credentials, region and endpoint from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`, `GOOGLE_APPLICATION_CREDENTIALS`, ...).
fn store_for(url: &url::Url) -> Result<(Box<dyn ObjectStore>, StorePath)> {
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| anyhow!("{url} is not a local file URL"))?;
            let prefix = StorePath::from_absolute_path(&path)?;
            Ok((
                Box::new(object_store::local::LocalFileSystem::new()),
                prefix,
            ))
        }
        "s3" => {
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()?;
            Ok((Box::new(store), StorePath::from_url_path(url.path())?))
        }
        "gs" | "gcs" => {
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()?;
            Ok((Box::new(store), StorePath::from_url_path(url.path())?))
        }
        other => bail!("unsupported URL scheme {other}:// (use s3://, gs:// or file://)"),
    }
}

/// Copies every object under `prefix` but `*.tmp` into `dir`; returns how many.
async fn fetch(store: &dyn ObjectStore, prefix: &StorePath, dir: &Path) -> Result<usize> {
    let mut listing = store.list(Some(prefix));
    let mut fetched = 0;
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| anyhow!("{e}"))?;
        let Some(rel) = meta.location.prefix_match(prefix) else {
            continue;
        };
        let rel: PathBuf = rel.map(|p| p.as_ref().to_string()).collect();
        if rel.extension().is_some_and(|x| x == "tmp") {
            continue;
        }
        let rel = member_path(&rel)?;
        let target = dir.join(&rel);
        if let Some(parent) = target.parent() {
            create_private_dir(parent)?;
        }
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| anyhow!("cannot fetch {}: {e}", meta.location))?
            .bytes()
            .await
            .map_err(|e| anyhow!("cannot fetch {}: {e}", meta.location))?;
        let mut out = create_private(&target)?;
        out.write_all(&bytes)
            .with_context(|| format!("cannot write {}", target.display()))?;
        fetched += 1;
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_by_scheme_only() {
        assert!(as_url(Path::new("s3://bucket/traces/t1")).is_some());
        assert!(as_url(Path::new("gs://bucket/t")).is_some());
        assert!(as_url(Path::new("file:///tmp/t")).is_some());
        assert!(as_url(Path::new("./s3:/x")).is_none());
        assert!(as_url(Path::new("testdata/pgbench-pg15")).is_none());
        assert!(as_url(Path::new("http://example.invalid/t")).is_none());
    }

    #[test]
    fn member_paths_must_be_plain() {
        assert_eq!(
            member_path(Path::new("queries/00000001.parquet")).unwrap(),
            Path::new("queries/00000001.parquet")
        );
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "./x"] {
            assert!(member_path(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
