//! The network harness: mutants over real TCP connections to an in-process broker, a few
//! connections at a time, each request waited for before the next (so a missing answer is
//! seen as such), a new connection whenever the broker closes one or the byte stream can no
//! longer be in step with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::*;

#[derive(Debug, Clone)]
pub struct NetConfig {
    pub seed: u64,
    pub workers: usize,
    pub max_execs: u64,
    pub budget: Duration,
    /// How long a request that is not a held pull may go unanswered.
    pub answer_timeout: Duration,
}

#[derive(Debug, Default)]
pub struct NetReport {
    pub execs: u64,
    /// Mutants the codec reads as one whole frame.
    pub frames: u64,
    pub answered: u64,
    pub oneway: u64,
    pub malformed: u64,
    /// Wrong length words and trailing bytes: the connection was given up after sending.
    pub out_of_step: u64,
    pub closed_by_broker: u64,
    pub held_pulls: u64,
    pub connections: u64,
    pub config_restores: u64,
    pub response_codes: BTreeMap<i32, u64>,
    /// Per request code: answered, and answered SUCCESS.
    pub requests: BTreeMap<i32, (u64, u64)>,
    pub failures: Vec<String>,
    pub elapsed: Duration,
    /// (mutants sent so far, memory) during the run.
    pub rss: Vec<(u64, Rss)>,
}

impl NetReport {
    /// Answered / SUCCESS per request code.
    pub fn per_request(&self) -> String {
        self.requests
            .iter()
            .map(|(c, (n, ok))| format!("{}:{n}/{ok}", RequestCode::name(*c).unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn summary(&self) -> String {
        let codes: Vec<String> = self
            .response_codes
            .iter()
            .map(|(c, n)| format!("{}={n}", ResponseCode::name(*c).unwrap_or("?")))
            .collect();
        format!(
            "{} mutants in {:.1} s ({:.0}/s): {} whole frames, {} answered, {} oneway, {} malformed \
             (closed), {} out of step, {} closed by the broker, {} held pulls given up, {} \
             connections, {} config restores; {} distinct response codes: {}",
            self.execs,
            self.elapsed.as_secs_f64(),
            self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.frames,
            self.answered,
            self.oneway,
            self.malformed,
            self.out_of_step,
            self.closed_by_broker,
            self.held_pulls,
            self.connections,
            self.config_restores,
            self.response_codes.len(),
            codes.join(" ")
        )
    }
}

/// What a mutant should get from the broker.
enum Expect {
    Answer {
        opaque: i32,
        code: i32,
        pull: bool,
    },
    Nothing,
    Close,
    /// The broker waits for bytes that are not coming, or reads the next frame out of step.
    GiveUp,
}

fn expect(bytes: &[u8]) -> Expect {
    match parse(bytes) {
        Parse::One(cmd) if cmd.is_response() || cmd.is_oneway() => Expect::Nothing,
        Parse::One(cmd) => Expect::Answer {
            opaque: cmd.opaque,
            code: cmd.code,
            pull: matches!(
                cmd.code,
                RequestCode::PULL_MESSAGE | RequestCode::LITE_PULL_MESSAGE
            ),
        },
        Parse::Trailing | Parse::Incomplete => Expect::GiveUp,
        // 0x16 opens a TLS handshake on a fresh connection of a permissive-TLS port.
        Parse::Malformed if bytes.first() == Some(&0x16) => Expect::GiveUp,
        Parse::Malformed => Expect::Close,
    }
}

pub struct Target {
    pub addr: String,
    /// The runtime settings as they were, as `key=value` text: all of them, and those put
    /// back after each change ([`seeds::HAMPERING_SETTINGS`]).
    pub settings: Vec<u8>,
    pub hampering: Vec<u8>,
}

pub async fn run(pool: Arc<Pool>, target: Arc<Target>, cfg: &NetConfig) -> NetReport {
    let started = Instant::now();
    let deadline = started + cfg.budget;
    let count = Arc::new(AtomicU64::new(0));
    let report = Arc::new(Mutex::new(NetReport::default()));
    regressions(&target, cfg, &report).await;
    let mut tasks = Vec::new();
    for w in 0..cfg.workers {
        let (pool, target, count, report) =
            (pool.clone(), target.clone(), count.clone(), report.clone());
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            worker(w, &pool, &target, &cfg, deadline, &count, &report).await
        }));
    }
    // Memory over the run: a leak grows with the mutants sent, an allocator's retention
    // levels off.
    let sampler = {
        let (count, report) = (count.clone(), report.clone());
        let every = cfg.budget / 6;
        tokio::spawn(async move {
            while Instant::now() + every / 2 < deadline {
                tokio::time::sleep(every).await;
                let n = count.load(Ordering::Relaxed);
                report.lock().unwrap().rss.push((n, Rss::now()));
            }
        })
    };
    for t in tasks {
        if let Err(e) = t.await {
            report
                .lock()
                .unwrap()
                .failures
                .push(format!("a harness worker failed: {e}"));
        }
    }
    sampler.abort();
    let mut r = std::mem::take(&mut *report.lock().unwrap());
    r.elapsed = started.elapsed();
    r
}

/// A runner whose random stream is fixed by `seed` and `stream`. XorShift, not proptest's
/// default ChaCha: unoptimized test builds spent 40% of the decoder fuzz generating ChaCha
/// blocks.
pub fn rng(seed: u64, stream: u64) -> TestRunner {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&(stream ^ 0x9E37_79B9_7F4A_7C15).to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::XorShift, &bytes),
    )
}

async fn worker(
    id: usize,
    pool: &Pool,
    target: &Target,
    cfg: &NetConfig,
    deadline: Instant,
    count: &AtomicU64,
    report: &Mutex<NetReport>,
) {
    let mut runner = rng(cfg.seed, id as u64);
    let mut wire: Option<Wire> = None;
    while Instant::now() < deadline && count.fetch_add(1, Ordering::Relaxed) < cfg.max_execs {
        let plan = next_plan(&mut runner);
        // A panic here is the harness's own, and says so.
        let m = {
            let _scope = panics::Scope::enter("harness");
            mutate::apply(pool, &plan)
        };
        let what = format!("seed `{}`, {plan:?}", pool.seeds[m.seed].name);
        send(&mut wire, target, cfg, report, m.bytes, what).await;
    }
}

/// The regression seeds, in order on one connection, before any mutant.
async fn regressions(target: &Target, cfg: &NetConfig, report: &Mutex<NetReport>) {
    let mut wire: Option<Wire> = None;
    for s in seeds::regressions() {
        let what = format!("`{}`", s.name);
        send(&mut wire, target, cfg, report, s.bytes, what).await;
        // Regressions are sequences: what one stored (and the store dispatched) the next
        // reads.
        tokio::time::sleep(s.pause).await;
    }
}

/// Sends one mutant, waits for what it should get, and records it.
async fn send(
    wire: &mut Option<Wire>,
    target: &Target,
    cfg: &NetConfig,
    report: &Mutex<NetReport>,
    bytes: Vec<u8>,
    what: String,
) {
    let outcome = exchange(wire, &target.addr, &bytes, cfg.answer_timeout).await;
    let restore = report.lock().unwrap().record(outcome, || {
        format!(
            "\n  mutant: {what}\n  bytes ({}): {}",
            bytes.len(),
            hex_head(&bytes, 512)
        )
    });
    if restore {
        if let Err(e) = restore_config(&target.addr, &target.hampering).await {
            report.lock().unwrap().failures.push(e);
        }
    }
}

impl NetReport {
    /// Counts one exchange; true when the broker's settings must be put back.
    fn record(&mut self, outcome: Outcome, what: impl Fn() -> String) -> bool {
        self.execs += 1;
        self.connections += outcome.connects;
        match outcome.result {
            Ok(Got::Answer(code, req)) => {
                self.frames += 1;
                self.answered += 1;
                *self.response_codes.entry(code).or_default() += 1;
                let per = self.requests.entry(req).or_default();
                per.0 += 1;
                per.1 += u64::from(code == ResponseCode::SUCCESS);
                let restore =
                    req == RequestCode::UPDATE_BROKER_CONFIG && code == ResponseCode::SUCCESS;
                self.config_restores += u64::from(restore);
                return restore;
            }
            Ok(Got::Nothing) => {
                self.frames += 1;
                self.oneway += 1;
            }
            Ok(Got::Closed { malformed: true }) => self.malformed += 1,
            Ok(Got::Closed { malformed: false }) => {
                self.frames += 1;
                self.closed_by_broker += 1;
            }
            Ok(Got::GaveUp) => self.out_of_step += 1,
            Ok(Got::Held) => {
                self.frames += 1;
                self.held_pulls += 1;
            }
            Err(e) => self.failures.push(format!("{e}{}", what())),
        }
        false
    }
}

/// A fresh plan. The strategy is not `Send`, so it lives only here, not across an await.
fn next_plan(runner: &mut TestRunner) -> mutate::Plan {
    mutate::plan(true).new_tree(runner).expect("plan").current()
}

/// Puts the runtime settings back after a mutant changed them, as an operator would: a
/// read-only or slow-polling broker would make the rest of the run test little.
pub async fn restore_config(addr: &str, settings: &[u8]) -> Result<(), String> {
    let admin = rmq_testkit::admin_client();
    let req =
        RemotingCommand::request(RequestCode::UPDATE_BROKER_CONFIG).with_body(settings.to_vec());
    let r = admin.invoke(addr, req, T).await;
    admin.close_all();
    match r {
        Ok(r) if r.code == ResponseCode::SUCCESS => Ok(()),
        other => Err(format!("restoring the broker's settings failed: {other:?}")),
    }
}

pub fn hex_head(bytes: &[u8], n: usize) -> String {
    let mut s: String = bytes.iter().take(n).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > n {
        s.push_str("...");
    }
    s
}

enum Got {
    /// The response code, and the request's code.
    Answer(i32, i32),
    Nothing,
    Closed {
        malformed: bool,
    },
    GaveUp,
    /// A pull still held after the wait: given up with its connection.
    Held,
}

struct Outcome {
    result: Result<Got, String>,
    connects: u64,
}

async fn exchange(
    wire: &mut Option<Wire>,
    addr: &str,
    bytes: &[u8],
    answer_timeout: Duration,
) -> Outcome {
    let mut connects = u64::from(wire.is_none());
    let w = match wire {
        Some(w) => w,
        None => wire.insert(Wire::connect(addr).await),
    };
    let expect = expect(bytes);
    // The broker may close as soon as it has read enough to refuse a frame (a length over
    // the limit), before the rest is written.
    let refused = matches!(expect, Expect::Close | Expect::GiveUp);
    let result = match w.write.write_all(bytes).await {
        Err(_) if refused => Ok(Got::Closed { malformed: true }),
        // The broker closed the connection since the last exchange (a client it considers
        // expired): once more on a fresh one.
        Err(_) => {
            connects += 1;
            let w = wire.insert(Wire::connect(addr).await);
            match w.write.write_all(bytes).await {
                Ok(()) => wait(w, &expect, answer_timeout).await,
                Err(e) => Err(format!("cannot write to a fresh connection: {e}")),
            }
        }
        Ok(()) => wait(w, &expect, answer_timeout).await,
    };
    // Anything but an answered or oneway request leaves the connection unusable.
    if !matches!(result, Ok(Got::Answer(..)) | Ok(Got::Nothing)) {
        *wire = None;
    }
    Outcome { result, connects }
}

/// What came back, or `Err` if the broker misbehaved.
async fn wait(w: &mut Wire, expect: &Expect, answer_timeout: Duration) -> Result<Got, String> {
    match *expect {
        Expect::Nothing => Ok(Got::Nothing),
        Expect::GiveUp => Ok(Got::GaveUp),
        Expect::Close => {
            let until = tokio::time::Instant::now() + answer_timeout;
            loop {
                match tokio::time::timeout_at(until, w.read.next()).await {
                    Err(_) => {
                        return Err(format!(
                        "a frame the codec refuses left the connection open for {answer_timeout:?}"
                    ))
                    }
                    Ok(None) | Ok(Some(Err(_))) => return Ok(Got::Closed { malformed: true }),
                    // Answers to earlier oneway frames are not expected either.
                    Ok(Some(Ok(cmd))) if cmd.is_response() => {
                        return Err(format!(
                            "an unexpected response (code {} opaque {})",
                            cmd.code, cmd.opaque
                        ))
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        }
        Expect::Answer { opaque, code, pull } => {
            // A pull may be held while its queue is empty, as long as its suspend time says:
            // after a short wait it is given up rather than waited for.
            let limit = if pull {
                Duration::from_secs(2)
            } else {
                answer_timeout
            };
            let until = tokio::time::Instant::now() + limit;
            loop {
                match tokio::time::timeout_at(until, w.read.next()).await {
                    Err(_) if pull => return Ok(Got::Held),
                    Err(_) => {
                        return Err(format!(
                            "no answer to request code {code} opaque {opaque} within {limit:?}"
                        ))
                    }
                    Ok(None) | Ok(Some(Err(_))) => return Ok(Got::Closed { malformed: false }),
                    Ok(Some(Ok(cmd))) if cmd.is_response() && cmd.opaque == opaque => {
                        return Ok(Got::Answer(cmd.code, code))
                    }
                    Ok(Some(Ok(cmd))) if cmd.is_response() => {
                        return Err(format!(
                        "waiting for opaque {opaque}, an unexpected response (code {} opaque {})",
                        cmd.code, cmd.opaque
                    ))
                    }
                    // Requests the broker sends clients (consumer-ids changed, transaction
                    // checks) are not answers.
                    Ok(Some(Ok(_))) => {}
                }
            }
        }
    }
}

/// Resident memory of this process (name server, broker and harness), in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub total: u64,
    /// Heap and other anonymous memory: what a leak grows. The rest is mostly the store's
    /// mapped files, resident as far as they were written.
    pub anon: u64,
}

impl Rss {
    pub fn now() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        Rss {
            total: field("VmRSS:"),
            anon: field("RssAnon:"),
        }
    }
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} MiB ({} MiB anonymous)",
            self.total / 1024,
            self.anon / 1024
        )
    }
}

/// An honest client after the run: a new topic created as an admin would, a message sent
/// and pulled back by an unsigned client.
pub async fn honest_round_trip(addr: &str) -> Result<(), String> {
    let admin = rmq_testkit::admin_client();
    let topic = "FuzzHonestTopic";
    let create = RemotingCommand::request_with_header(
        RequestCode::UPDATE_AND_CREATE_TOPIC,
        &CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: 4,
            write_queue_nums: 4,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".into(),
            ..Default::default()
        },
    );
    let r = admin
        .invoke(addr, create, T)
        .await
        .map_err(|e| format!("create topic: {e}"))?;
    admin.close_all();
    if r.code != ResponseCode::SUCCESS {
        return Err(format!("create topic answered {} {:?}", r.code, r.remark));
    }
    let client = RemotingClient::default();
    let body = b"honest message after fuzzing".to_vec();
    let r = client
        .invoke(addr, rmq_testkit::send_request(topic, &body), T)
        .await
        .map_err(|e| format!("send: {e}"))?;
    if r.code != ResponseCode::SUCCESS {
        return Err(format!("send answered {} {:?}", r.code, r.remark));
    }
    let deadline = Instant::now() + T;
    loop {
        let pull = RemotingCommand::request_with_header(
            RequestCode::PULL_MESSAGE,
            &PullMessageRequestHeader {
                consumer_group: "FuzzHonestGroup".into(),
                topic: topic.into(),
                queue_id: 0,
                queue_offset: 0,
                max_msg_nums: 32,
                sys_flag: 4,
                commit_offset: 0,
                suspend_timeout_millis: 0,
                subscription: Some("*".into()),
                sub_version: 0,
                expression_type: Some("TAG".into()),
                ..Default::default()
            },
        );
        let r = client
            .invoke(addr, pull, T)
            .await
            .map_err(|e| format!("pull: {e}"))?;
        if r.code == ResponseCode::SUCCESS {
            let msgs = MessageExt::decode_all(r.body.clone()).map_err(|e| e.to_string())?;
            client.close_all();
            return match msgs.iter().any(|m| m.body[..] == body[..]) {
                true => Ok(()),
                false => Err(format!("pulled {} messages, not the one sent", msgs.len())),
            };
        }
        if Instant::now() > deadline {
            return Err(format!("pull answered {} {:?}", r.code, r.remark));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
