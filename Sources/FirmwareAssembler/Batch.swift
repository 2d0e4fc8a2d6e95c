import DiskImage
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Options of a batch (`fwassemble batch`, docs/batch.md).
public struct BatchOptions: Sendable {
    /// Where the archives (and their reports) go; created if missing.
    public var outputDirectory: String
    /// The `fwassemble` executable each disk runs in (`assemble`), one process per disk.
    public var executable: String
    /// Disks at once.
    public var jobs: Int = 1
    /// Wall-clock seconds a disk may take; its process is killed (SIGKILL) after that.
    public var timeout: Double?
    /// Address space of a disk's process (RLIMIT_AS), in bytes.
    public var memoryLimit: UInt64?
    /// The JSON-lines results; nil: `<outputDirectory>/results.jsonl`.
    public var resultsPath: String?
    /// Keep the results file and skip the disks it says are done (status ok, output present
    /// with the recorded SHA-256).
    public var resume: Bool = false
    /// The request every disk's `fwassemble assemble` gets on standard input (`--request -`),
    /// with its disk and output filled in; its output group decides the names' suffix.
    public var request = AssembleRequest()
    /// The output file name of the batch's only disk (the Python/Dask driver names outputs
    /// across its whole corpus, then runs one disk per task).
    public var outputName: String?
    /// Called (from the batch's threads, one call at a time) when a disk starts or ends.
    public var progress: (@Sendable (BatchProgress) -> Void)?

    public init(outputDirectory: String, executable: String) {
        self.outputDirectory = outputDirectory
        self.executable = executable
    }
}

/// Where a batch stands.
public struct BatchProgress: Sendable {
    public var total: Int
    /// Disks finished (skipped by `--resume` included).
    public var done: Int
    public var failed: Int
    public var skipped: Int
    public var elapsed: Double
    /// Seconds left at the rate so far (disks run in this batch), nil before the first ends.
    public var eta: Double?
}

/// One line of the results file: what happened to one disk.
public struct BatchRecord: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        /// The archive was written (warnings do not fail a disk, unless `--strict` was passed).
        case ok
        /// `assemble` exited with an error (its one-line message is `error`).
        case failed
        /// Killed after `--timeout` seconds.
        case timeout
        /// Ended by a signal: a crash, or the memory limit (`--memory`) reached.
        case killed
    }
    /// The report's counts.
    public struct Summary: Sendable, Codable, Equatable {
        public var members: Int
        public var files: Int
        public var hardlinks: Int
        public var contentBytes: UInt64
        public var warnings: Int
        enum CodingKeys: String, CodingKey {
            case members, files, hardlinks, contentBytes = "content_bytes", warnings
        }
    }

    /// The image, as an absolute path.
    public var image: String
    public var size: UInt64?
    /// SHA-256 of the image file.
    public var sha256: String?
    public var status: Status
    public var exitCode: Int32?
    public var signal: Int32?
    /// The child's error line (without the `fwassemble: ` prefix), or what ended it.
    public var error: String?
    /// The archive, when it was written.
    public var output: String?
    public var outputSHA256: String?
    public var summary: Summary?
    public var seconds: Double
    /// Peak resident set size of the disk's process (wait4 rusage), in bytes.
    public var peakRSSBytes: UInt64?

    enum CodingKeys: String, CodingKey {
        case image, size, sha256, status, exitCode = "exit_code", signal, error, output
        case outputSHA256 = "output_sha256", summary, seconds, peakRSSBytes = "peak_rss_bytes"
    }

    /// Every key is written, absent values as null, so each line has the same shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(image, forKey: .image)
        try c.encode(size, forKey: .size)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(status, forKey: .status)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(signal, forKey: .signal)
        try c.encode(error, forKey: .error)
        try c.encode(output, forKey: .output)
        try c.encode(outputSHA256, forKey: .outputSHA256)
        try c.encode(summary, forKey: .summary)
        try c.encode((seconds * 1000).rounded() / 1000, forKey: .seconds)
        try c.encode(peakRSSBytes, forKey: .peakRSSBytes)
    }

    /// The record as one JSON line (sorted keys, no newline).
    public func jsonLine() throws -> String {
        try JSONText.line(self)
    }
}

/// What a batch did: one record per disk, in input order.
public struct BatchResult: Sendable {
    public var records: [BatchRecord]
    /// Disks skipped by `--resume` (their records are the ones read from the results file).
    public var skipped: Int
    public var resultsPath: String
    /// Disks not started because the batch was stopped by a signal.
    public var notStarted = 0
    public var allSucceeded: Bool { notStarted == 0 && records.allSatisfy { $0.status == .ok } }
}

/// Runs many disks, each in its own `fwassemble assemble` process (docs/batch.md).
public enum Batch {
    /// Runs `disks` (already expanded by `BatchInputs.expand`). Throws only for what stops the
    /// whole batch (the output folder or results file cannot be written); a disk's failure is
    /// its record.
    public static func run(disks: [String], options: BatchOptions) throws -> BatchResult {
        guard options.jobs >= 1 else { throw FWError(.invalidArgument, "jobs must be at least 1") }
        if options.outputName != nil, disks.count != 1 {
            throw FWError(.invalidArgument, "an output name is for a batch of one disk (got \(disks.count))")
        }
        let outDir = BatchInputs.absolute(options.outputDirectory)
        do {
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        } catch {
            throw FWError(.io, "cannot create the output folder: \(error.localizedDescription)", disk: outDir)
        }
        let resultsPath = BatchInputs.absolute(options.resultsPath ?? outDir + "/results.jsonl")
        let suffix = try options.request.validate().suffix
        let names = options.outputName.map { [$0] } ?? outputNames(for: disks, suffix: suffix)

        var previous: [String: BatchRecord] = [:]
        if options.resume { previous = readRecords(resultsPath) }
        let results = try ResultsFile(path: resultsPath, append: options.resume)

        let state = BatchState(count: disks.count)
        var work: [Int] = []
        for (i, disk) in disks.enumerated() {
            if let old = previous[disk], old.status == .ok, let out = old.output, let sum = old.outputSHA256,
               out == outDir + "/" + names[i], (try? SHA256.hex(ofFileAt: out)) == sum {  // unreadable: not done, runs again
                state.finish(i, old, skipped: true)
            } else {
                work.append(i)
            }
        }
        let start = Date()
        let report = { @Sendable in options.progress?(state.progress(elapsed: Date().timeIntervalSince(start))) }
        report()
        // One thread per job, each taking the next disk: the threads mostly wait for their child
        // (DispatchQueue.concurrentPerform would cap the jobs at the number of cores).
        let queue = WorkQueue(work)
        let group = DispatchGroup()
        for _ in 0..<min(options.jobs, work.count) {
            group.enter()
            Thread.detachNewThread {
                // A signal to the batch (the CLI's handlers set Cancellation.process) starts no
                // further disk; the running ones get it forwarded by ChildProcess.
                while !Cancellation.process.isCancelled, let i = queue.next() {
                    let record = runOne(disk: disks[i], output: outDir + "/" + names[i], options: options)
                    results.append(record)
                    state.finish(i, record, skipped: false)
                    report()
                }
                group.leave()
            }
        }
        group.wait()
        if let error = results.failure { throw error }
        // Disks a signal kept from starting have no record (the results file does not list them,
        // so --resume runs them).
        return BatchResult(records: state.records.compactMap { $0 }, skipped: state.skipped, resultsPath: resultsPath,
                           notStarted: state.records.filter { $0 == nil }.count)
    }

    /// Output file names, one per disk: the image's stem (`OutputNaming.stem`) plus `suffix`;
    /// stems shared by several disks get the first 8 hex digits of the SHA-256 of the image's
    /// path, so names never collide and are the same on every run.
    public static func outputNames(for disks: [String], suffix: String) -> [String] {
        var counts: [String: Int] = [:]
        for d in disks { counts[OutputNaming.stem(of: d), default: 0] += 1 }
        return disks.map { d in
            let s = OutputNaming.stem(of: d)
            return counts[s] == 1 ? s + suffix : s + "-" + SHA256.hex(Array(d.utf8)).prefix(8) + suffix
        }
    }

    /// One disk: its child process, then the digests and the report's counts.
    static func runOne(disk: String, output: String, options: BatchOptions) -> BatchRecord {
        var record = BatchRecord(image: disk, status: .failed, seconds: 0)
        var st = stat()
        if stat(disk, &st) == 0 { record.size = UInt64(st.st_size) }
        var request = options.request
        request.source.disk = disk
        request.output.output = output
        request.output.report = nil
        let child: ChildProcess
        do {
            child = ChildProcess(executable: options.executable, arguments: ["assemble", "--request", "-", "--quiet"],
                                 input: Array(try request.json().utf8), memoryLimit: options.memoryLimit, timeout: options.timeout)
        } catch {
            record.error = "\(error)"
            return record
        }
        // The input is hashed while the child works on it.
        let digest = Digest(path: disk)
        let outcome: ChildProcess.Outcome
        do {
            outcome = try child.run()
        } catch {
            record.error = "\(error)"
            record.sha256 = digest.wait()
            return record
        }
        record.sha256 = digest.wait()
        record.seconds = outcome.seconds
        record.peakRSSBytes = outcome.peakRSS
        record.exitCode = outcome.exitCode
        record.signal = outcome.signal
        let message = errorLine(outcome.stderr)
        if outcome.timedOut {
            record.status = .timeout
            record.error = "timed out after \(options.timeout.map { "\($0)" } ?? "?") seconds"
        } else if let signal = outcome.signal {
            record.status = .killed
            let name = String(cString: strsignal(signal))
            let limit = options.memoryLimit.map { ", with a memory limit of \($0 >> 20) MiB" } ?? ""
            record.error = "killed by signal \(signal) (\(name))\(limit)" + (message.map { ": \($0)" } ?? "")
        } else if outcome.exitCode == 0 {
            record.status = .ok
            record.output = output
            record.outputSHA256 = try? SHA256.hex(ofFileAt: output)  // unreadable: the record says null
            if let data = FileManager.default.contents(atPath: output + ".report.json"),
               let report = try? JSONDecoder().decode(AssembleReport.self, from: data) {  // no report: summary null
                record.summary = .init(members: report.members, files: report.files, hardlinks: report.hardlinks,
                                       contentBytes: report.contentBytes, warnings: report.warnings.count)
            }
        } else {
            record.status = .failed
            record.error = message ?? "exit status \(outcome.exitCode ?? -1)"
            if let limit = options.memoryLimit, let m = message, m.lowercased().contains("memory") {
                record.error = m + " (memory limit \(limit >> 20) MiB)"
            }
        }
        return record
    }

    /// The child's error: its last `fwassemble: ...` line, else its last line.
    static func errorLine(_ stderr: String) -> String? {
        let lines = stderr.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        if let line = lines.last(where: { $0.hasPrefix("fwassemble: ") }) { return String(line.dropFirst("fwassemble: ".count)) }
        return lines.last
    }

    /// The last record of each image in a results file (a damaged line is ignored).
    public static func readRecords(_ path: String) -> [String: BatchRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        var records: [String: BatchRecord] = [:]
        for line in data.split(separator: UInt8(ascii: "\n")) {
            if let r = try? JSONDecoder().decode(BatchRecord.self, from: Data(line)) { records[r.image] = r }  // a torn line: that disk runs again
        }
        return records
    }
}

/// SHA-256 of a file on a thread of its own.
final class Digest: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: String?

    init(path: String) {
        Thread.detachNewThread { [self] in
            value = try? SHA256.hex(ofFileAt: path)  // unreadable: the record's sha256 says null
            done.signal()
        }
    }

    func wait() -> String? {
        done.wait()
        return value
    }
}

/// The disks not yet started, handed out one at a time.
final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int]
    init(_ items: [Int]) { self.items = items.reversed() }
    func next() -> Int? { lock.withLock { items.popLast() } }
}

/// The records so far and the counts the progress shows.
final class BatchState: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var records: [BatchRecord?]
    private var done = 0, failed = 0
    private(set) var skipped = 0
    private var ranSeconds = 0.0
    init(count: Int) { records = Array(repeating: nil, count: count) }

    func finish(_ index: Int, _ record: BatchRecord, skipped wasSkipped: Bool) {
        lock.withLock {
            records[index] = record
            done += 1
            if record.status != .ok { failed += 1 }
            if wasSkipped { skipped += 1 }
        }
    }

    func progress(elapsed: Double) -> BatchProgress {
        lock.withLock {
            let ran = done - skipped
            let left = records.count - done
            return BatchProgress(total: records.count, done: done, failed: failed, skipped: skipped, elapsed: elapsed,
                                 eta: ran > 0 ? elapsed / Double(ran) * Double(left) : nil)
        }
    }
}

/// The results file: one line per disk, written with one write(2) as the disk ends and synced,
/// so a batch killed at any point loses no finished disk.
final class ResultsFile: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private(set) var failure: FWError?

    init(path: String, append: Bool) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND | (append ? 0 : O_TRUNC), 0o644)
        guard fd >= 0 else { throw FWError(.io, "cannot open the results file: \(String(cString: strerror(errno)))", disk: path) }
    }

    deinit { close(fd) }

    func append(_ record: BatchRecord) {
        lock.withLock {
            guard failure == nil else { return }
            do {
                let line = Array((try record.jsonLine() + "\n").utf8)
                let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                guard n == line.count else { throw FWError(.io, "cannot write the results file: \(String(cString: strerror(errno)))") }
                _ = fdatasync(fd)
            } catch {
                failure = FWError(error)
            }
        }
    }
}
