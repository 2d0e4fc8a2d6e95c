import Archive
import DiskImage
import DockerState
import FileSystems
import Foundation
import MountPlan

/// What every `assemble` output shares, written once: the booted namespace built from the
/// request, the report begun and finished the same way (partition table, plan, namespace, walk
/// and journal warnings, Docker data-roots), `--strict`, and the report file.
struct AssemblyJob {
    let disk: Disk
    let request: AssembleRequest
    let booted: BootedNamespace
    var report: AssembleReport

    init(disk: Disk, request: AssembleRequest, resolved: ResolvedOutput, hooks: JobHooks, output: String) throws {
        self.disk = disk
        self.request = request
        let plan = PlanOptions(root: request.root, replayJournal: !request.source.noReplay)
        booted = try BootedNamespace(disk: disk, options: plan, journalProgress: hooks.journalProgress)
        try hooks.check()
        report = AssembleReport(tool: "fwassemble", version: fwassembleVersion, image: disk.path, output: output,
                                compression: resolved.format == .tar ? resolved.compression.description : "none",
                                plan: booted.plan, partitions: [], members: 0, files: 0, hardlinks: 0, contentBytes: 0,
                                tarBytes: 0, droppedDevices: [], skippedSockets: [], warnings: [], readErrors: [])
        for w in booted.setupWarnings(table: try disk.table().warnings) { report.warn(w.code, at: w.place, w.message) }
        if resolved.format != .tar { report.format = AssembleFormat.ext4.rawValue }
    }

    /// Bytes of the mounted partitions: an upper bound of what the walk reads.
    var plannedBytes: UInt64 {
        booted.plan.mounts.reduce(UInt64(0)) { sum, m in
            sum + (m.partition.flatMap { i in booted.partitions.partitions.first { $0.index == i }?.size } ?? 0)
        }
    }

    /// The walk of the booted namespace, with `--rehost`'s edits when asked: `body` writes it.
    mutating func withWalk<T>(_ body: (inout any EntryWalk) throws -> T) throws -> T {
        if request.rehost {
            var walk: any EntryWalk = RehostWalk(booted.walk(), plan: booted.plan)
            let result = try body(&walk)
            report.rehost = (walk as? RehostWalk)?.changes
            return result
        }
        var walk: any EntryWalk = booted.walk()
        return try body(&walk)
    }

    /// Adds what the namespace, the walk and the journals met and the Docker data-roots, then
    /// applies `--strict` (before the output is committed, so a strict failure leaves nothing).
    mutating func finish(walkProblems: [WalkProblem]) throws {
        for w in booted.namespaceWarnings { report.warn(w.code, at: w.place, w.message) }
        for p in walkProblems { report.warn(.walk, at: p.path, p.error.description) }
        report.addJournals(of: booted)
        for w in disk.deviceWarnings() { report.warn(w.code, at: w.place, w.message) }
        let docker = DataRootLocator.report(for: booted.namespace, binds: booted.binds)
        if !docker.dataRoots.isEmpty { report.docker = docker }
        if request.strict, let failure = strictFailure(report.warnings + report.readErrors) { throw failure }
    }

    /// Writes the report (the same output rules as the archive; never over an input or the archive).
    func writeReport(to path: String?, besides output: String?) throws {
        guard let path else { return }
        do {
            try OutputTarget.write(Array((try report.json() + "\n").utf8), to: path,
                                   inputs: disk.inputFiles + request.addTar + (output.map { [$0] } ?? []))
        } catch let e as FWError {
            throw FWError(e.code, "cannot write the report \(path): \(e.message)", cause: e)
        }
    }

}

/// `--strict`'s failure for the warnings a job met (nil when there are none): one error naming
/// the count and the first, for assemble, extract and the exports alike.
func strictFailure(_ warnings: [String]) -> FWError? {
    guard let first = warnings.first else { return nil }
    return FWError(.corrupt, "--strict: \(warnings.count) warning\(warnings.count == 1 ? "" : "s"), the first: \(first)")
}

extension Disk {
    /// An error of a job on this disk, naming the disk (errors that are not `FWError`s, such as
    /// a caller's own from a callback, pass unchanged).
    func placed(_ error: any Error) -> any Error {
        if let e = error as? FWError { return e.within(disk: path) }
        return error
    }

    /// Refuses a report path that is one of the job's inputs or the output itself, before
    /// anything is written.
    func checkReport(_ report: String?, output: String?, inputs: [String]) throws {
        guard let report else { return }
        try OutputTarget.refuse(report, ifAnyOf: inputs)
        if let output, output != "-", report == output || OutputTarget.sameFile(report, output) {
            throw FWError(.invalidArgument, "--report \(report) is the output itself")
        }
    }
}

extension Disk {
    /// Writes the booted namespace as the request asks (docs/assembly.md): an archive (tar with
    /// gzip, zstd or none), or an ext4 or qcow2 image; to `request.output.output` or the default
    /// name (`OutputNaming`) in the current directory, through `OutputTarget`. Returns (and writes
    /// beside the output) the report. `request.source` is not read: this disk is the source.
    public func assemble(_ request: AssembleRequest = AssembleRequest(), hooks: JobHooks = JobHooks()) throws -> AssembleReport {
        let resolved = try request.validate()
        let output = request.output.output ?? OutputNaming.defaultName(for: path, resolved)
        if resolved.format != .tar {
            return try writeImage(request, resolved: resolved, output: output, hooks: hooks)
        }
        return try writeArchive(to: .path(output), request, resolved: resolved, hooks: hooks)
    }

    /// `assemble` to any destination (a path, a file descriptor, a callback); archives only.
    /// `request.output.output` is not read: the destination says where the archive goes.
    public func assemble(to destination: AssembleDestination, _ request: AssembleRequest = AssembleRequest(),
                         hooks: JobHooks = JobHooks()) throws -> AssembleReport {
        var request = request
        if case .path(let p) = destination { request.output.output = p }
        let resolved = try request.validate()
        guard resolved.format == .tar else {
            throw FWError(.invalidArgument, "ext4 and qcow2 images are written to a file: use assemble(_:) with an output path")
        }
        return try writeArchive(to: destination, request, resolved: resolved, hooks: hooks)
    }

    /// The archive: the booted walk into `Archiver` over the compressor over the destination.
    func writeArchive(to destination: AssembleDestination, _ request: AssembleRequest, resolved: ResolvedOutput,
                      hooks: JobHooks) throws -> AssembleReport {
        let reportFile = destination.reportPath(explicit: request.output.report)
        try checkReport(reportFile, output: destination.pathDescription, inputs: inputFiles)
        let output = try destination.open(inputs: inputFiles, cancellation: hooks.cancellation ?? .process)
        var job: AssemblyJob
        do {
            job = try AssemblyJob(disk: self, request: request, resolved: resolved, hooks: hooks, output: destination.description)
        } catch {
            output.abort()
            throw error
        }
        do {
            let tar = TarWriter(sink: try resolved.compression.sink(over: output.archiveSink, threads: resolved.threads))
            var tally = AssemblyTally(booted: job.booted, progress: hooks.progress, plannedBytes: job.plannedBytes)
            var contentBytes: UInt64 = 0
            let summary = try job.withWalk { walk in
                try Archiver.archive(&walk, into: tar, dropDevices: request.noDevices, hardlinks: request.hardlinks) { entry, kind in
                    if kind == .file { contentBytes += entry.metadata.size }
                    tally.count(entry, contentBytes: contentBytes)
                }
            }
            try tar.finish()
            job.report.add(summary)
            job.report.tarBytes = tar.bytesWritten
            job.report.partitions = tally.partitions
            if request.hardlinks == .copy {
                job.report.hardlinkMode = request.hardlinks.rawValue
                job.report.copiedHardlinks = summary.copiedHardlinks
                job.report.copiedBytes = summary.copiedBytes
            }
            try job.finish(walkProblems: summary.walkProblems)
            try output.commit()
        } catch {
            output.abort()
            throw placed(error)
        }
        try job.writeReport(to: reportFile, besides: destination.pathDescription)
        return job.report
    }
}

extension AssembleReport {
    /// The archive loop's counts.
    mutating func add(_ summary: ArchiveSummary) {
        members = summary.members
        files = summary.files
        hardlinks = summary.hardlinks
        contentBytes = summary.contentBytes
        skippedSockets = summary.skippedSockets
        droppedDevices = summary.droppedDevices
        readErrors(summary.readErrors.map { ($0.path, $0.message) })
    }
}
