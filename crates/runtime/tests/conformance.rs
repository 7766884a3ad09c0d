//! One body per contract, run on the real seams (temp dir, loopback) and inside a turmoil host on
//! the simulated ones: if both pass, what the simulator shows is what a real machine does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twinmq_runtime::{Env, File, Fs, Listener, Net, OpenMode, RealEnv, SimEnv};

/// The file-system contract every `Fs` keeps.
async fn fs_contract<E: Env>(env: E, dir: PathBuf) {
    let fs = env.fs();
    fs.create_dir_all(&dir.join("nested")).unwrap();
    let path = dir.join("b.dat");
    let file = fs.open(&path, OpenMode::CreateNew).unwrap();
    assert!(file.is_empty().unwrap());
    file.write_all_at(0, b"hello world").unwrap();
    file.write_all_at(6, b"WORLD").unwrap();
    assert_eq!(&file.read_at(0, 11).unwrap()[..], b"hello WORLD");
    assert_eq!(&file.read_at(6, 5).unwrap()[..], b"WORLD");
    let past_end = file.read_at(8, 10).unwrap_err();
    assert_eq!(past_end.kind(), std::io::ErrorKind::UnexpectedEof);
    file.set_len(64).unwrap();
    assert_eq!(file.len().unwrap(), 64);
    assert_eq!(&file.read_at(11, 4).unwrap()[..], &[0, 0, 0, 0]);
    file.set_len(5).unwrap();
    assert_eq!(&file.read_at(0, 5).unwrap()[..], b"hello");
    fs.sync_data_async(Arc::new(file)).await.unwrap();
    fs.sync_dir(&dir).unwrap();

    assert_eq!(
        fs.open(&path, OpenMode::CreateNew).unwrap_err().kind(),
        std::io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        fs.open(&dir.join("missing"), OpenMode::Read).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    fs.open(&dir.join("a.dat"), OpenMode::Create).unwrap();
    fs.rename(&dir.join("a.dat"), &dir.join("c.dat")).unwrap();
    let listed: Vec<String> = fs
        .read_dir(&dir)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, ["b.dat", "c.dat", "nested"]);
    assert!(fs.is_dir(&dir.join("nested")));
    assert!(!fs.is_dir(&path));
    fs.remove_file(&dir.join("c.dat")).unwrap();
    assert!(!fs.exists(&dir.join("c.dat")));
    assert!(fs.exists(&path));
    fs.open(&dir.join("nested").join("x.dat"), OpenMode::Create).unwrap();
    fs.remove_dir_all(&dir.join("nested")).unwrap();
    assert!(!fs.exists(&dir.join("nested")));
    assert!(fs.exists(&path));
}

/// The network contract every `Net` keeps: bind, connect, bytes both ways, end of stream.
async fn net_echo_server<E: Env>(env: E, addr: SocketAddr) -> std::io::Result<()> {
    let listener = env.net().bind(addr).await?;
    let (mut stream, _) = listener.accept().await?;
    let mut buffer = Vec::new();
    stream.read_to_end(&mut buffer).await?;
    stream.write_all(&buffer).await?;
    stream.shutdown().await
}

async fn net_echo_client<E: Env>(env: E, addr: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = env.net().connect(addr).await?;
    stream.write_all(b"ping over the seam").await?;
    stream.shutdown().await?;
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await?;
    Ok(echoed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fs_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    fs_contract(RealEnv::with_seed(1), dir.path().join("contract")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_net_keeps_the_contract() {
    let env = RealEnv::with_seed(1);
    let listener = env.net().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = Vec::new();
        stream.read_to_end(&mut buffer).await.unwrap();
        stream.write_all(&buffer).await.unwrap();
    });
    let echoed = net_echo_client(env, &addr.to_string()).await.unwrap();
    assert_eq!(echoed, b"ping over the seam");
    server.await.unwrap();
}

fn sim() -> turmoil::Sim<'static> {
    turmoil::Builder::new().rng_seed(7).epoch(UNIX_EPOCH + Duration::from_secs(1_000)).build()
}

#[test]
fn sim_fs_keeps_the_contract() {
    let mut sim = sim();
    sim.client("node", async {
        fs_contract(SimEnv::for_host(7, "node"), PathBuf::from("/data/contract")).await;
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn sim_net_keeps_the_contract() {
    let mut sim = sim();
    sim.host("server", || async {
        net_echo_server(SimEnv::for_host(7, "server"), "0.0.0.0:9000".parse().unwrap()).await?;
        Ok(())
    });
    sim.client("client", async {
        let echoed = net_echo_client(SimEnv::for_host(7, "client"), "server:9000").await?;
        assert_eq!(echoed, b"ping over the seam");
        Ok(())
    });
    sim.run().unwrap();
}

/// What a crash keeps on the simulated disk: exactly what was synced, and a new file only once
/// its directory was synced — the POSIX contract the storage core's protocol is written for.
#[test]
fn sim_crash_keeps_synced_bytes_and_durably_named_files_only() {
    let mut sim = sim();
    let phase = std::rc::Rc::new(std::cell::Cell::new(0));
    let host_phase = phase.clone();
    sim.host("node", move || {
        let phase = host_phase.clone();
        async move {
            let fs = SimEnv::for_host(7, "node").fs().clone();
            let dir = Path::new("/data");
            if phase.get() == 0 {
                fs.create_dir_all(dir).unwrap();
                fs.sync_dir(Path::new("/")).unwrap();
                let synced = fs.open(&dir.join("synced"), OpenMode::CreateNew).unwrap();
                synced.write_all_at(0, b"durable").unwrap();
                synced.sync_data().unwrap();
                fs.sync_dir(dir).unwrap();
                synced.write_all_at(7, b" and lost").unwrap();
                let orphan = fs.open(&dir.join("orphan"), OpenMode::CreateNew).unwrap();
                orphan.write_all_at(0, b"synced data, unsynced name").unwrap();
                orphan.sync_data().unwrap();
                phase.set(1);
            } else {
                let synced = fs.open(&dir.join("synced"), OpenMode::Read).unwrap();
                assert_eq!(
                    &synced.read_at(0, synced.len().unwrap() as usize).unwrap()[..],
                    b"durable"
                );
                assert!(
                    !fs.exists(&dir.join("orphan")),
                    "a file whose directory was never synced survived"
                );
                phase.set(2);
            }
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    sim.step().unwrap();
    assert_eq!(phase.get(), 1);
    sim.crash("node");
    sim.bounce("node");
    sim.step().unwrap();
    assert_eq!(phase.get(), 2);
}
