import FirmwareAssembler
import Foundation

// The Docker calls of the C ABI (facade: Disk.docker, Disk.exportDocker).

/// `fwassemble docker --json` for the disk.
func dockerJSON(_ disk: Disk, options: CallOptions) throws -> String {
    try disk.docker(options: options.planOptions).json()
}

/// What fwa_export_container returns as JSON.
private struct ExportResultJSON: Encodable {
    var what: String
    var output: String
    var layers: Int
    var members: Int
    var files: Int
    var hardlinks: Int
    var contentBytes: UInt64
    var tarBytes: UInt64
    var problems: [String]

    enum CodingKeys: String, CodingKey {
        case what, output, layers, members, files, hardlinks, contentBytes = "content_bytes", tarBytes = "tar_bytes", problems
    }
}

/// Exports a container (or, with the `image` option, an image) and returns the result as JSON.
func exportContainer(_ disk: Disk, reference: String, output: String, options: CallOptions) throws -> String {
    let r = try disk.exportDocker(reference, image: options.image ?? false,
                                  options: ExtractOptions(output: output, compression: try options.archiveCompression(),
                                                          threads: try options.compressionThreads()),
                                  plan: options.planOptions, dataRoot: options.dataRoot)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let value = ExportResultJSON(what: r.what, output: r.output, layers: r.layers, members: r.members, files: r.files,
                                 hardlinks: r.hardlinks, contentBytes: r.contentBytes, tarBytes: r.tarBytes, problems: r.problems)
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
