import Foundation
import TestSupport
import Testing

/// The built `fwassemble` binary (SwiftPM puts it beside the test bundle).
enum HostileCLI {
    static let path: String? = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.appendingPathComponent("fwassemble").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Per command: wall-clock limit and address-space limit (RLIMIT_AS through prlimit; the
    /// healthy binary assembles the largest test disk under 1 GiB, see docs/limits.md).
    static let timeout: TimeInterval = 60
    static let addressSpace = 1 << 30

    struct Outcome {
        var status: Int32
        var signalled: Bool
        var timedOut: Bool
        var stderr: String
    }

    /// Runs `fwassemble ARGS` under prlimit with a kill after `timeout`; stdout/stderr go to files
    /// in `dir` (no pipe can fill up).
    static func run(_ arguments: [String], in dir: String, tag: String) throws -> Outcome {
        let binary = try #require(path, "fwassemble binary not built")
        let errPath = dir + "/\(tag).stderr", outPath = dir + "/\(tag).stdout"
        FileManager.default.createFile(atPath: errPath, contents: nil)
        FileManager.default.createFile(atPath: outPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--as=\(addressSpace)", binary] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        var timedOut = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            done.wait()
        }
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                       timedOut: timedOut, stderr: String(stderr.suffix(600)))
    }
}

/// Archive member names through Python's tarfile (independent of our writer): every name and
/// hardlink target must be "./" or start with "./", with no "", "." or ".." component after it.
enum MemberNames {
    static let script = """
    import sys, tarfile
    bad = []
    def ok(n):
        if n in (".", "./"): return True
        if not n.startswith("./") or "\\0" in n: return False
        parts = n[2:].rstrip("/").split("/")
        return all(p not in ("", ".", "..") for p in parts)
    n = 0
    with tarfile.open(sys.argv[1], "r:*") as t:
        for m in t:
            n += 1
            if not ok(m.name): bad.append("member " + repr(m.name))
            if m.islnk() and not ok(m.linkname): bad.append("hardlink target " + repr(m.linkname))
    if n == 0: bad.append("empty archive")
    print("\\n".join(bad[:10]))
    """

    static func problems(_ archive: String) throws -> String {
        String(decoding: try TestImages.run(["python3", "-c", script, archive]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
}

@Suite("Hostile disks: the corrupted-disk corpus through the CLI")
struct CorruptDiskTests {
    /// Generates (or reuses) images/out/corrupt with images/corrupt.sh and lists its cases. Done
    /// once per test process (a static let initialises once, thread-safely): tests running in
    /// parallel must not run the generator over each other's files.
    static func corpus() throws -> [String] { try generated.get() }

    private static let generated = Result<[String], any Error> {
        let script = TestImages.repositoryRoot.appendingPathComponent("images/corrupt.sh").path
        try TestImages.run(["bash", script, TestImages.directory.path])
        let dir = TestImages.directory.appendingPathComponent("corrupt").path
        let list = try String(contentsOfFile: dir + "/cases.tsv", encoding: .utf8)
        return list.split(separator: "\n").compactMap { $0.split(separator: "\t").first.map { dir + "/" + $0 } }
    }

    /// One case: inspect, plan, assemble; each exits 0 or 1 within the limits, assemble leaves
    /// its output only on success, and the archive's names are normalised.
    static func check(_ image: String, failures: Failures) {
        let name = URL(fileURLWithPath: image).lastPathComponent
        do {
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let outDir = scratch + "/out"
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            let archive = outDir + "/rootfs.tar.gz"
            for (tag, args) in [("inspect", ["inspect", image]), ("plan", ["plan", image]),
                                ("assemble", ["assemble", image, "-o", archive, "--report", scratch + "/report.json"])] {
                let o = try HostileCLI.run(args, in: scratch, tag: tag)
                if o.timedOut {
                    failures.add("\(name): \(tag) did not finish in \(Int(HostileCLI.timeout)) s"); continue
                }
                if o.signalled || !(o.status == 0 || o.status == 1) {
                    failures.add("\(name): \(tag) ended with \(o.signalled ? "signal" : "status") \(o.status): \(o.stderr)"); continue
                }
                guard tag == "assemble" else { continue }
                let left = (try? FileManager.default.contentsOfDirectory(atPath: outDir)) ?? []
                if o.status == 0 {
                    if left != ["rootfs.tar.gz"] { failures.add("\(name): assemble succeeded but left \(left)"); continue }
                    let bad = try MemberNames.problems(archive)
                    if !bad.isEmpty { failures.add("\(name): archive names not normalised: \(bad)") }
                } else if !left.isEmpty {
                    failures.add("\(name): assemble failed but left \(left) behind")
                }
            }
        } catch {
            failures.add("\(name): \(error)")
        }
    }

    @Test("every corpus case: exit 0 or 1, no hang, 1 GiB, no output on failure, normalised names")
    func corpusThroughCLI() throws {
        let cases = try Self.corpus()
        #expect(cases.count >= 100, "the corpus should hold the ~150 cases of images/corrupt.sh")
        let failures = Failures()
        // Two at a time (the machine has two cores shared with the rest of the suite).
        let next = NSLock()
        nonisolated(unsafe) var index = 0
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            while true {
                next.lock()
                let i = index; index += 1
                next.unlock()
                guard i < cases.count else { return }
                Self.check(cases[i], failures: failures)
            }
        }
        for f in failures.all { Issue.record(Comment(rawValue: f)) }
    }
}

@Suite("Hostile disks: named cases")
struct NamedCaseTests {
    /// ext4-symchain: /etc/fstab is the head of a 10,000-symlink chain. Resolution stops at 40 hops
    /// and the plan says so (it used to drop the fstab silently).
    @Test func symlinkChainBehindFstabIsAWarning() throws {
        _ = try CorruptDiskTests.corpus()
        let image = TestImages.directory.appendingPathComponent("corrupt/ext4-symchain.img").path
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let o = try HostileCLI.run(["plan", image], in: scratch, tag: "plan")
        #expect(o.status == 0 && !o.signalled)
        let out = (try? String(contentsOfFile: scratch + "/plan.stdout", encoding: .utf8)) ?? ""
        #expect((out + o.stderr).contains("/etc/fstab:"), "no warning about the unreadable /etc/fstab: \(out) \(o.stderr)")
    }
}
