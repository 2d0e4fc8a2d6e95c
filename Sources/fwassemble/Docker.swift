import ArgumentParser
import FirmwareAssembler
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Fwassemble {
    struct Docker: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List and check the Docker data-roots of the booted device; export a container's filesystem.",
            discussion: """
                Finds every Docker or balena-engine data-root in the assembled namespace \
                (daemon.json, engine units, defaults), checks its integrity (layers, lower links, \
                container and image layer chains, tags) and lists images, containers and volumes. \
                --export writes a container's merged filesystem (rw over -init over image layers), \
                --export-image an image's. Exit status: 0 success, 1 error or --expect mismatch, 2 usage.
                """)

        @OptionGroup var booted: BootedDisk

        @Flag(help: "Print the report as JSON.")
        var json = false

        @Option(help: "A JSON list of expected containers ([{\"name\": ..., \"image\": ...}]); exit 1 on missing or unexpected ones.")
        var expect: String?

        @Option(help: "Write this container's (name or id) merged filesystem to -o.")
        var export: String?

        @Option(help: "Write this image's (tag or id) merged filesystem to -o.")
        var exportImage: String?

        @Option(help: "With --export/--export-image: the data-root path to use when there are several.")
        var dataRoot: String?

        @Option(name: [.short, .customLong("output")], help: "Output of --export/--export-image, or - for stdout.")
        var output: String?

        @OptionGroup var archive: CompressionOptions

        @Flag(help: "With --export/--export-image: exit 1 at the first problem of the export, leaving no output.")
        var strict = false

        @Option(help: ArgumentHelp("--export-image from layer blobs: the most bytes one layer may decompress to (default 64 GiB).", valueName: "bytes"))
        var maxLayerSize: UInt64?

        @Option(help: ArgumentHelp("--export-image from layer blobs: the most a layer may expand, times its compressed size, beyond 64 MiB (default 100).", valueName: "n"))
        var maxLayerRatio: UInt64?

        var exportRequest: ExportRequest {
            var r = ExportRequest()
            r.source = booted.imageOptions.source(booted.image)
            r.root = booted.rootOption.root
            r.export = export
            r.exportImage = exportImage
            r.dataRoot = dataRoot
            r.output = archive.request(output: output)
            r.strict = strict
            r.maxLayerSize = maxLayerSize
            r.maxLayerRatio = maxLayerRatio
            return r
        }

        func validate() throws {
            if export != nil || exportImage != nil {
                try validateRequest(output: output) { _ = try exportRequest.validate() }
            } else if output != nil {
                throw ValidationError("-o is only for --export and --export-image")
            } else if maxLayerSize != nil || maxLayerRatio != nil {
                throw ValidationError("--max-layer-size and --max-layer-ratio are only for --export and --export-image")
            }
        }

        func run() throws {
            if export != nil || exportImage != nil {
                do {
                    let request = exportRequest
                    let result = try ImageOptions.open(request.source).export(request)
                    for p in result.problems { Fwassemble.writeError("warning: \(p)\n") }
                    Fwassemble.writeError("wrote \(result.output): \(result.what), \(result.layers) layers, \(result.members) entries (\(result.files) files, \(result.hardlinks) hardlinks)\n")
                } catch {
                    Fwassemble.fail(error)
                }
                return
            }
            let disk: Disk
            do { disk = try booted.open() } catch { Fwassemble.fail(error) }
            let report: DockerReport
            do { report = try disk.docker(options: booted.rootOption.planOptions) } catch { Fwassemble.fail(error) }
            if json {
                do { print(try report.json()) } catch { Fwassemble.fail(error) }
            } else {
                printTables(report)
            }
            if let expect {
                let mismatches: [String]
                do {
                    guard let data = FileManager.default.contents(atPath: expect) else {
                        throw ValidationError("cannot read \(expect)")
                    }
                    mismatches = try report.compare(expected: Array(data))
                } catch {
                    Fwassemble.fail(error)
                }
                for m in mismatches { Fwassemble.writeError("expect: \(m)\n") }
                if !mismatches.isEmpty { throw ExitCode.failure }
                Fwassemble.writeError("expect: all expected containers found\n")
            }
        }

        func printTables(_ report: DockerReport) {
            for p in report.problems { Fwassemble.writeError("warning: \(p)\n") }
            if report.dataRoots.isEmpty { print("no Docker data-root found") }
            for root in report.dataRoots {
                print("data-root \(root.path) (\(root.engine), \(root.driver))" + (root.foundVia.count > 1 || root.foundVia.first != root.path ? ", found via \(root.foundVia.joined(separator: ", "))" : ""))
                if let state = root.libpodState {
                    let extras = [state.journalRolledBack ? "its hot journal rolled back in memory" : nil, state.walRead ? "its WAL read" : nil].compactMap { $0 }
                    print("libpod state: \(state.file ?? "none") (\(state.backend))" + (extras.isEmpty ? "" : ", " + extras.joined(separator: ", ")))
                }
                print("")
                print("IMAGES (\(root.images.count))")
                table([["ID", "TAGS", "CREATED", "LAYERS", "SIZE", "CMD"]] + root.images.map { i in
                    [String(i.id.dropFirst(7).prefix(12)), i.tags.joined(separator: ","), i.created ?? "-", "\(i.layers)",
                     i.size.map(human) ?? "?", ((i.entrypoint ?? []) + (i.cmd ?? [])).joined(separator: " ")]
                })
                print("")
                print("CONTAINERS (\(root.containers.count))")
                var rows: [[String]] = [["ID", "NAME", "IMAGE", "STATE", "EXIT", "OOM", "STARTED", "FINISHED", "RESTART", "COMMAND"]]
                for c in root.containers {
                    let image: String = c.imageTag ?? String(c.image.dropFirst(7).prefix(12))
                    let restart: String = (c.restartPolicy ?? "-") + "/" + String(c.restartCount)
                    let command: String = ([c.path ?? ""] + (c.args ?? [])).joined(separator: " ")
                    let row: [String] = [String(c.id.prefix(12)), c.name, image, c.state, String(c.exitCode), c.oomKilled ? "yes" : "no",
                                         c.startedAt ?? "-", c.finishedAt ?? "-", restart, command]
                    rows.append(row)
                }
                table(rows)
                if !root.volumes.isEmpty {
                    print("")
                    print("VOLUMES (\(root.volumes.count))")
                    table([["NAME", "SIZE", "FILES"]] + root.volumes.map { [$0.name, human($0.size), "\($0.files)"] })
                }
                print("")
                let s = root.summary
                print("summary: \(s.containers) containers, \(s.running) running, \(s.exitedNonzero) exited non-zero, \(s.restarting) restarting, \(s.paused) paused, \(s.dead) dead; \(s.imagesWithoutContainers.count) images without containers")
                print("integrity: \(root.integrity.ok ? "ok" : "\(root.integrity.problems.count) problems"); \(root.integrity.layers) layers, \(root.integrity.whiteouts) whiteouts, \(root.integrity.opaqueDirectories) opaque directories")
                for p in root.integrity.problems { print("  problem: \(p)") }
                print("")
            }
        }

        func table(_ rows: [[String]]) {
            guard let header = rows.first else { return }
            var widths = header.map(\.count)
            for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = min(max(widths[i], cell.count), 48) } }
            for row in rows {
                let cells = row.enumerated().map { i, cell -> String in
                    let c = cell.count > 48 ? String(cell.prefix(47)) + "…" : cell
                    return i == row.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                }
                print("  " + cells.joined(separator: "  "))
            }
        }
    }
}
