import ArgumentParser
import FirmwareAssembler
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Fwassemble {
    struct Batch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Assemble many disks, each in its own process with its own time and memory limit.",
            discussion: """
                INPUTS are disk images, folders (searched recursively for disk images by content, \
                not by name) and @LIST files (one input per line). Each disk runs `fwassemble \
                assemble` in a child process, so a crash, hang or runaway disk fails that disk \
                alone. One JSON line per disk goes to the results file as the disk ends (see \
                docs/batch.md). Exit status: 0 every disk succeeded, 1 some failed, 2 usage.
                """)

        @Argument(help: "Disk images, folders and @LIST files.")
        var inputs: [String]

        @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The folder the archives go to.", valueName: "dir"))
        var outputDirectory: String

        @Option(help: "Disks at once (default: the number of cores).")
        var jobs: Int?

        @Option(help: ArgumentHelp("Seconds a disk may take before its process is killed.", valueName: "seconds"))
        var timeout: Double?

        @Option(help: ArgumentHelp("Address space of a disk's process (RLIMIT_AS), in MiB.", valueName: "MiB"))
        var memory: Int?

        @Option(help: ArgumentHelp("The JSON-lines results (default: OUTDIR/results.jsonl).", valueName: "file.jsonl"))
        var results: String?

        @Flag(help: "Skip the disks the results file says are done and whose archive still has the recorded SHA-256.")
        var resume = false

        @Option(name: .customLong("output-name"), help: ArgumentHelp("The archive's file name, for a batch of one disk (used by the Python batch driver).", visibility: .hidden))
        var outputName: String?

        @Flag(help: "Print the disks the inputs name, each with its archive, as JSON lines on stdout, and stop.")
        var list = false

        @OptionGroup var imageOptions: ImageOptions

        @OptionGroup var archive: CompressionOptions

        @OptionGroup var rootOption: RootOption

        @OptionGroup var tree: TreeOptions

        @Flag(help: "A disk with warnings counts as failed.")
        var strict = false

        @Flag(name: [.short, .long], help: "No progress bar and no summary.")
        var quiet = false

        @Option(help: ArgumentHelp("Every disk's assemble options as a JSON request (docs/library.md), - for standard input; no other assemble option may be given.", valueName: "file"))
        var request: String?

        /// The request every disk's `assemble` gets (its disk and output filled in per disk).
        var optionsRequest: AssembleRequest {
            var r = AssembleRequest()
            r.source = imageOptions.source(nil)
            r.root = rootOption.root
            tree.apply(to: &r)
            r.output = archive.request(output: nil)
            r.strict = strict
            return r
        }

        func makeRequest() throws -> AssembleRequest {
            guard let request else { return optionsRequest }
            guard optionsRequest == AssembleRequest() else { throw ValidationError("--request takes every assemble option from its JSON; give no other") }
            let data = request == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: request)
            guard let data else { throw ValidationError("cannot read --request \(request)") }
            do {
                let r = try AssembleRequest.decode(Array(data))
                _ = try r.validate()
                guard r.source.disk == nil, r.output.output == nil, r.output.report == nil else {
                    throw FWError(.invalidArgument, "a batch request names no disk, output or report (each disk gets its own)")
                }
                return r
            } catch let e as FWError {
                throw ValidationError(e.message)
            }
        }

        func validate() throws {
            if request == nil { try validateRequest(output: nil) { _ = try optionsRequest.validate() } }
            if let jobs, jobs < 1 || jobs > 1024 { throw ValidationError("--jobs must be between 1 and 1024") }
            if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be more than 0 seconds") }
            if let memory, memory < 1 || memory > (1 << 30) { throw ValidationError("--memory must be a positive number of MiB") }
            if let outputName, outputName.contains("/") || outputName.isEmpty { throw ValidationError("--output-name must be a file name") }
        }

        func run() throws {
            let disks: [String]
            do {
                disks = try BatchInputs.expand(inputs, excluding: [outputDirectory])
            } catch {
                throw ValidationError("\(error)")
            }
            guard !disks.isEmpty else { throw ValidationError("no disk images found in \(inputs.joined(separator: " "))") }
            if outputName != nil, disks.count != 1 {
                throw ValidationError("--output-name needs exactly one disk (found \(disks.count))")
            }
            var options = BatchOptions(outputDirectory: outputDirectory, executable: Self.executablePath())
            options.jobs = jobs ?? ProcessInfo.processInfo.activeProcessorCount
            options.timeout = timeout
            options.memoryLimit = memory.map { UInt64($0) << 20 }
            options.resultsPath = results
            options.resume = resume
            options.outputName = outputName
            options.request = try makeRequest()
            if list {
                let suffix = try options.request.validate().suffix
                let names = outputName.map { [$0] } ?? FirmwareAssembler.Batch.outputNames(for: disks, suffix: suffix)
                for (disk, name) in zip(disks, names) {
                    print(try JSONText.line(["image": disk, "output_name": name]))
                }
                return
            }
            let showProgress = !quiet && isatty(2) != 0
            if showProgress { options.progress = { Self.draw($0) } }

            let result: BatchResult
            do {
                result = try FirmwareAssembler.Batch.run(disks: disks, options: options)
            } catch {
                if showProgress { Fwassemble.writeError("\n") }
                Fwassemble.fail(error)
            }
            if showProgress { Fwassemble.writeError("\r\u{1B}[K") }
            let failed = result.records.filter { $0.status != .ok }
            if !quiet {
                for r in failed {
                    // The child's message usually starts with the image already.
                    let error = r.error ?? ""
                    Fwassemble.writeError("\(r.status.rawValue): \(error.hasPrefix(r.image) ? error : "\(r.image): \(error)")\n")
                }
                Fwassemble.writeError("""
                    \(result.records.count) disks: \(result.records.count - failed.count) ok\
                    \(result.skipped > 0 ? " (\(result.skipped) already done)" : ""), \(failed.count) failed; \
                    results in \(result.resultsPath)

                    """)
            }
            // Stopped by a signal: the children it reached have removed their outputs; end by it.
            if let signal = Cancellation.process.signalNumber {
                Fwassemble.writeError("fwassemble: batch stopped by signal \(signal); \(result.notStarted) disks not started\n")
                Glibc.signal(signal, SIG_DFL)
                raise(signal)
            }
            if !failed.isEmpty { throw ExitCode.failure }
        }

        /// This executable, which each disk runs as `fwassemble assemble`.
        static func executablePath() -> String {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            return CommandLine.arguments[0]
        }

        static func draw(_ p: BatchProgress) {
            let width = 24
            let filled = p.total > 0 ? p.done * width / p.total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let eta = p.eta.map { "ETA \(Int($0.rounded()))s" } ?? "ETA -"
            Fwassemble.writeError("\r[\(bar)] \(p.done)/\(p.total) disks, \(p.failed) failed, \(Int(p.elapsed))s, \(eta)\u{1B}[K")
        }
    }
}
