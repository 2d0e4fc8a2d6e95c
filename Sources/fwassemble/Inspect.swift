import ArgumentParser
import FirmwareAssembler

extension Fwassemble {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a disk image's partition table and the filesystem in each partition.")

        @Argument(help: "The raw disk image (or a block device).")
        var image: String

        @OptionGroup var imageOptions: ImageOptions

        @Flag(help: "Print JSON (image, table, partitions) instead of a table.")
        var json = false

        func run() throws {
            let inspection: DiskInspection
            do {
                inspection = try imageOptions.disk(image).inspect()
            } catch {
                Fwassemble.fail(error)
            }
            print(json ? try inspection.json() : inspection.text())
            // Warnings on standard error, as every command prints them (in --json, they are
            // the document's table.warnings).
            if !json { for w in inspection.table.warnings { Fwassemble.writeError("warning: \(w)\n") } }
        }
    }
}
