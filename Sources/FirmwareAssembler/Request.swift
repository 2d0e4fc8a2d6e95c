import Archive
import DiskImage
import PartitionTable
import Foundation

// The requests: one Codable value per job family, the only way options travel. The CLI builds
// them from its option groups, the C ABI and Python decode them from JSON, a batch child reads
// one on stdin (`assemble --request -`). JSON keys are the CLI's long option names with `_` for
// `-` (docs/library.md, "Options"), flat, and a contract: extended, never renamed.

/// What a job reads: the disk image and how it is opened.
public struct SourceRequest: Sendable, Equatable, Codable {
    /// The disk image (the CLI's IMAGE argument); the C ABI and Python's `Disk` give it separately.
    public var disk: String?
    /// `--backing-dir`: where qcow2 backing files are looked up.
    public var backingDir: String?
    /// `--snapshot`: a qcow2 internal snapshot (name or ID).
    public var snapshot: String?
    /// `--no-replay`: read ext3/ext4 filesystems that need recovery as they are on disk, and UBIFS
    /// volumes from their committed index (no journal replay).
    public var noReplay: Bool = false
    /// `--flash-geometry PAGE+SPARE`: a raw NAND dump's page and spare (OOB) sizes.
    public var flashGeometry: String?
    /// `--device PATH` (repeatable): other devices of a multi-device filesystem (btrfs RAID
    /// members), matched by filesystem UUID and device id.
    public var devices: [String] = []

    public init(disk: String? = nil, backingDir: String? = nil, snapshot: String? = nil, noReplay: Bool = false,
                flashGeometry: String? = nil, devices: [String] = []) {
        self.disk = disk
        self.backingDir = backingDir
        self.snapshot = snapshot
        self.noReplay = noReplay
        self.flashGeometry = flashGeometry
        self.devices = devices
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case disk, backingDir = "backing_dir", snapshot, noReplay = "no_replay", flashGeometry = "flash_geometry", devices = "device"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        disk = try c.decodeIfPresent(String.self, forKey: .disk)
        backingDir = try c.decodeIfPresent(String.self, forKey: .backingDir)
        snapshot = try c.decodeIfPresent(String.self, forKey: .snapshot)
        noReplay = try c.decodeIfPresent(Bool.self, forKey: .noReplay) ?? false
        flashGeometry = try c.decodeIfPresent(String.self, forKey: .flashGeometry)
        devices = try c.decodeIfPresent([String].self, forKey: .devices) ?? []
    }

    /// Decodes the source keys alone (the C ABI's `fwa_open2`: backing_dir, snapshot,
    /// flash_geometry, device).
    public static func decode(_ json: [UInt8]) throws -> SourceRequest {
        try RequestKeys.decode(Checked<SourceRequest>.self, json, job: "open").value
    }

    /// Opens the disk (`disk` must be set).
    public func open(decompressionProgress: (@Sendable (UInt64, UInt64?) -> Void)? = nil) throws -> Disk {
        guard let disk, !disk.isEmpty else { throw FWError(.invalidArgument, "the request names no disk") }
        var geometry: FlashGeometry?
        if let flashGeometry {
            guard let parsed = FlashGeometry(parsing: flashGeometry) else {
                throw FWError(.invalidArgument, "flash geometry \"\(flashGeometry)\" is not PAGE+SPARE (for example 2048+64)")
            }
            geometry = parsed
        }
        if let empty = devices.first(where: \.isEmpty) {
            throw FWError(.invalidArgument, "a device path is empty (\"\(empty)\")")
        }
        return try Disk(path: disk, backingDirectory: backingDir, snapshot: snapshot, flashGeometry: geometry, devices: devices,
                        decompressionProgress: decompressionProgress)
    }
}

/// Where and how an archive or image is written.
public struct OutputRequest: Sendable, Equatable, Codable {
    /// `--format`: tar (default), ext4 or qcow2; nil: from `output`'s suffix, else tar.
    public var format: AssembleFormat?
    /// `--compression`: none, gzip or zstd; nil: from `output`'s suffix, else gzip.
    public var compression: CompressionFormat?
    /// `--level`: gzip 1-12 (default 6), zstd 1-19 (default 3).
    public var level: Int?
    /// `--threads`: compression threads, 1-256 (default: the cores).
    public var threads: Int?
    /// `-o`/`--output`: a path, "-" for standard output; nil: the default name in the current folder.
    public var output: String?
    /// `--report`: the JSON report's path (default: OUTPUT.report.json beside a file output).
    public var report: String?

    public init(format: AssembleFormat? = nil, compression: CompressionFormat? = nil, level: Int? = nil,
                threads: Int? = nil, output: String? = nil, report: String? = nil) {
        self.format = format
        self.compression = compression
        self.level = level
        self.threads = threads
        self.output = output
        self.report = report
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case format, compression, level, threads, output, report
    }

    /// The format and compression, from the options and the output's suffix; a contradiction
    /// (`-o x.tar.zst --compression gzip`) and every number out of range are `.invalidArgument`.
    public func resolve() throws -> ResolvedOutput {
        let implied: (format: AssembleFormat?, compression: CompressionFormat?) = try output.map(OutputNaming.implied(by:)) ?? (nil, nil)
        if let f = format, let i = implied.format, !(f == i || (f == .ext4 && i == .qcow2)) {
            throw FWError(.invalidArgument, "--format \(f.rawValue) contradicts the output name \(output ?? "") (\(i.rawValue))")
        }
        let chosen: AssembleFormat = format.map { $0 == .ext4 && implied.format == .qcow2 ? .qcow2 : $0 } ?? implied.format ?? .tar
        if chosen != .tar, compression != nil {
            throw FWError(.invalidArgument, "--compression applies to archives; an \(chosen.rawValue) image is not compressed")
        }
        if chosen != .tar, level != nil {
            throw FWError(.invalidArgument, "--level applies to archives; an \(chosen.rawValue) image is not compressed")
        }
        if let c = compression, let i = implied.compression, c != i {
            throw FWError(.invalidArgument, "--compression \(c.rawValue) contradicts the output name \(output ?? "") (\(i.rawValue))")
        }
        if let threads, !(1...256).contains(threads) {
            throw FWError(.invalidArgument, "--threads \(threads) is not between 1 and 256")
        }
        let archive = try Compression(compression ?? implied.compression ?? .gzip, level: level)
        return ResolvedOutput(format: chosen, compression: chosen == .tar ? archive : .none,
                              threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
    }
}

/// An output's format and compression, decided once.
public struct ResolvedOutput: Sendable, Equatable {
    public var format: AssembleFormat
    public var compression: Compression
    public var threads: Int

    /// The default file name's suffix: ".rootfs.tar.gz", ".rootfs.tar.zst", ".rootfs.tar",
    /// ".ext4", ".qcow2".
    public var suffix: String {
        switch format {
        case .ext4: return ".ext4"
        case .qcow2: return ".qcow2"
        case .tar:
            switch compression {
            case .none: return ".rootfs.tar"
            case .gzip: return ".rootfs.tar.gz"
            case .zstd: return ".rootfs.tar.zst"
            }
        }
    }
}

/// The one naming rule (CLI, batch, C ABI, Python): an output is named after its image's stem,
/// the file name minus known disk and container suffixes, plus the suffix of its format and
/// compression; an output's own suffix chooses the format and compression when no option does.
public enum OutputNaming {
    /// Disk image and container suffixes taken off an image's name (case-insensitive, repeatedly:
    /// `haos_ova-14.1.qcow2.xz` -> `haos_ova-14.1`).
    public static let imageSuffixes = [".img", ".raw", ".bin", ".qcow2", ".vmdk", ".vhd", ".vhdx", ".vdi", ".ova",
                                       ".xz", ".gz", ".zst", ".zip"]

    /// The image's file name without its known suffixes (the whole name when that would leave
    /// nothing).
    public static func stem(of image: String) -> String {
        let base = image.split(separator: "/").last.map(String.init) ?? image
        var stem = base
        while let s = imageSuffixes.first(where: { stem.lowercased().hasSuffix($0) && stem.count > $0.count }) {
            stem.removeLast(s.count)
        }
        return stem.isEmpty || stem.hasPrefix(".") && stem.count == 1 ? base : stem
    }

    /// `stem(of: image)` + the suffix of `output`.
    public static func defaultName(for image: String, _ output: ResolvedOutput) -> String {
        stem(of: image) + output.suffix
    }

    /// What an output name's suffix says: `.tar.gz`/`.tgz`/`.gz` gzip, `.tar.zst`/`.tzst`/`.zst`
    /// zstd, `.tar` none, `.ext4` and `.qcow2` those formats; other suffixes say nothing.
    /// A compression fwassemble does not write (`.xz`, `.bz2`, `.lz4`...) is `.invalidArgument`.
    public static func implied(by output: String) throws -> (format: AssembleFormat?, compression: CompressionFormat?) {
        let name = (output.split(separator: "/").last.map(String.init) ?? output).lowercased()
        if name.hasSuffix(".ext4") { return (.ext4, nil) }
        if name.hasSuffix(".qcow2") { return (.qcow2, nil) }
        if name.hasSuffix(".tar") { return (.tar, CompressionFormat.none) }
        if name.hasSuffix(".tgz") || name.hasSuffix(".gz") { return (.tar, .gzip) }
        if name.hasSuffix(".tzst") || name.hasSuffix(".zst") { return (.tar, .zstd) }
        for s in [".xz", ".txz", ".bz2", ".tbz2", ".lz4", ".lzma", ".lzo", ".z", ".7z", ".zip"] where name.hasSuffix(s) {
            throw FWError(.invalidArgument, "the output name \(output) asks for \(s) compression, which fwassemble does not write (.tar.gz, .tar.zst or .tar)")
        }
        return (nil, nil)
    }
}

/// `assemble`: the booted namespace as one archive or image.
public struct AssembleRequest: Sendable, Equatable, Codable {
    public var source = SourceRequest()
    /// `--root`: the root partition (number, GPT name or label), whatever the bootloader says.
    public var root: String?
    /// `--no-devices`: leave device nodes out and list them in the report.
    public var noDevices = false
    /// `--rehost`: mask the folded mount units and comment out the folded fstab lines.
    public var rehost = false
    /// `--hardlinks`: link (default) or copy.
    public var hardlinks: HardlinkMode = .link
    /// `--add-tar`: tars (plain, .gz, .zst, .xz) whose members are written on top (ext4/qcow2).
    public var addTar: [String] = []
    public var output = OutputRequest()
    /// `--padding`: free space of an ext4 image, in MiB (default 4096, at most 16 TiB).
    public var padding: UInt64?
    /// `--inodes`: an ext4 image's inode count.
    public var inodes: UInt32?
    /// `--uuid`: an ext4 image's filesystem UUID.
    public var uuid: String?
    /// `--strict`: a warning fails the job (exit 1), and no output is left.
    public var strict = false

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case root, noDevices = "no_devices", rehost, hardlinks, addTar = "add_tar", padding, inodes, uuid, strict
    }

    /// Every key of the JSON form (the CLI's options), for messages and the schema test.
    public static let keys = RequestKeys.keys(CodingKeys.self)

    mutating func fields(_ f: RequestFields<CodingKeys>) throws {
        try f.selector(&root, .root)
        try f.value(&noDevices, .noDevices)
        try f.value(&rehost, .rehost)
        try f.value(&hardlinks, .hardlinks)
        try f.list(&addTar, .addTar)
        try f.optional(&padding, .padding)
        try f.optional(&inodes, .inodes)
        try f.optional(&uuid, .uuid)
        try f.value(&strict, .strict)
    }

    /// The largest `--padding` in MiB: what fits the 2^32 - 1 blocks of 4 KiB of an ext4 without the
    /// 64bit feature, less penguin's 4096 blocks (16 MiB) of slack: 16,777,199 MiB, just under
    /// 16 TiB. The content of the disk comes on top, checked when the image is sized.
    public static let maximumPaddingMiB: UInt64 = (((1 << 32) - 1 - 4096) * 4096) >> 20

    /// Checks every option and their combinations (`.invalidArgument`, a usage error in the CLI),
    /// and returns the output's format and compression.
    public func validate() throws -> ResolvedOutput {
        let resolved = try output.resolve()
        if resolved.format == .tar {
            if !addTar.isEmpty || inodes != nil || uuid != nil || padding != nil {
                throw FWError(.invalidArgument, "--add-tar, --padding, --inodes and --uuid apply to --format ext4 or qcow2")
            }
        } else {
            if output.output == "-" {
                throw FWError(.invalidArgument, "an \(resolved.format.rawValue) image cannot be written to standard output")
            }
            if hardlinks == .copy {
                throw FWError(.invalidArgument, "--hardlinks copy applies to the archive; an ext4 image keeps hardlinks as shared inodes")
            }
            if let padding, padding > Self.maximumPaddingMiB {
                throw FWError(.invalidArgument, "--padding \(padding) MiB is more than \(Self.maximumPaddingMiB) MiB "
                              + "(16 TiB less 16 MiB: the 2^32 - 1 blocks of 4 KiB an ext4 without the 64bit feature holds)")
            }
            if let inodes, inodes < 16 || inodes == UInt32.max {
                throw FWError(.invalidArgument, "--inodes \(inodes) is out of range (16 to \(UInt32.max - 1), ext4's 32-bit inode count)")
            }
            if let uuid, UUID(uuidString: uuid) == nil { throw FWError(.invalidArgument, "--uuid \(uuid) is not a UUID") }
        }
        if let root, root.isEmpty { throw FWError(.invalidArgument, "--root is empty") }
        if let report = output.report, report == "-" {
            throw FWError(.invalidArgument, "--report - is not supported; give a file name (the archive may be on standard output)")
        }
        return resolved
    }

    /// The request as one JSON object (sorted keys), as the C ABI, Python and a batch child take it.
    public func json() throws -> String {
        try JSONText.line(self)
    }

    /// Decodes a request from JSON (unknown keys and wrong types are `.invalidArgument`).
    public static func decode(_ json: [UInt8]) throws -> AssembleRequest { try RequestKeys.decode(json) }
}

/// `extract`: one partition's filesystem as an archive.
public struct ExtractRequest: Sendable, Equatable, Codable {
    public var source = SourceRequest()
    /// `--partition`: number, GPT partition name or filesystem label.
    public var partition: String = ""
    public var output = OutputRequest()
    /// `--strict`: a warning fails the job (exit 1), and no output is left.
    public var strict = false

    public init(partition: String = "", output: OutputRequest = OutputRequest()) {
        self.partition = partition
        self.output = output
    }

    public init() { self.init(partition: "") }

    enum CodingKeys: String, CodingKey, CaseIterable { case partition, strict }

    public static let keys = RequestKeys.keys(CodingKeys.self)

    mutating func fields(_ f: RequestFields<CodingKeys>) throws {
        try f.selector(&partition, .partition)
        try f.value(&strict, .strict)
    }

    public static func decode(_ json: [UInt8]) throws -> ExtractRequest { try RequestKeys.decode(json) }

    public func validate() throws -> ResolvedOutput {
        guard !partition.isEmpty else { throw FWError(.invalidArgument, "extract needs a partition (number, GPT name or label)") }
        guard output.output != nil else { throw FWError(.invalidArgument, "extract needs an output (-o FILE, or - for standard output)") }
        let resolved = try output.resolve()
        guard resolved.format == .tar else { throw FWError(.invalidArgument, "extract writes archives (.tar, .tar.gz, .tar.zst), not \(resolved.format.rawValue)") }
        if output.report != nil { throw FWError(.invalidArgument, "extract writes no report file") }
        return resolved
    }
}

/// `docker --export` / `--export-image`: a container's or an image's merged filesystem.
public struct ExportRequest: Sendable, Equatable, Codable {
    public var source = SourceRequest()
    public var root: String?
    /// `--export`: a container (name, id or id prefix).
    public var export: String?
    /// `--export-image`: an image (tag or id).
    public var exportImage: String?
    /// `--data-root`: which data-root, when there are several.
    public var dataRoot: String?
    public var output = OutputRequest()
    /// `--strict`: a problem of the export fails it (exit 1), and no output is left.
    public var strict = false
    /// `--max-layer-size`: the most bytes one compressed layer blob may decompress to (default
    /// 64 GiB; docs/limits.md).
    public var maxLayerSize: UInt64?
    /// `--max-layer-ratio`: the most a compressed layer blob may expand, as a multiple of its size
    /// (default 100, beyond its first 64 MiB; docs/limits.md).
    public var maxLayerRatio: UInt64?

    public init() {}

    /// A container's (`image: false`) or an image's export to `output`; the compression follows
    /// the output's suffix (.tar none, .tar.zst zstd, else gzip).
    public static func of(_ reference: String, image: Bool, to output: String) -> ExportRequest {
        var r = ExportRequest()
        if image { r.exportImage = reference } else { r.export = reference }
        r.output.output = output
        return r
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case root, export, exportImage = "export_image", dataRoot = "data_root", strict
        case maxLayerSize = "max_layer_size", maxLayerRatio = "max_layer_ratio"
    }

    public static let keys = RequestKeys.keys(CodingKeys.self)

    mutating func fields(_ f: RequestFields<CodingKeys>) throws {
        try f.selector(&root, .root)
        try f.optional(&export, .export)
        try f.optional(&exportImage, .exportImage)
        try f.optional(&dataRoot, .dataRoot)
        try f.value(&strict, .strict)
        try f.optional(&maxLayerSize, .maxLayerSize)
        try f.optional(&maxLayerRatio, .maxLayerRatio)
    }

    public static func decode(_ json: [UInt8]) throws -> ExportRequest { try RequestKeys.decode(json) }

    /// The reference and whether it names an image.
    public func validate() throws -> (reference: String, image: Bool, output: ResolvedOutput) {
        if export != nil, exportImage != nil { throw FWError(.invalidArgument, "--export and --export-image cannot be used together") }
        guard let reference = export ?? exportImage, !reference.isEmpty else {
            throw FWError(.invalidArgument, "an export names a container (--export) or an image (--export-image)")
        }
        guard output.output != nil else { throw FWError(.invalidArgument, "--export and --export-image need -o OUT.tar.gz") }
        let resolved = try output.resolve()
        guard resolved.format == .tar else { throw FWError(.invalidArgument, "exports are archives (.tar, .tar.gz, .tar.zst), not \(resolved.format.rawValue)") }
        if output.report != nil { throw FWError(.invalidArgument, "an export writes no report file") }
        if maxLayerSize == 0 { throw FWError(.invalidArgument, "--max-layer-size must be at least 1 byte") }
        if maxLayerRatio == 0 { throw FWError(.invalidArgument, "--max-layer-ratio must be at least 1") }
        return (reference, exportImage != nil, resolved)
    }
}

/// What a running job reports to its caller and how it is stopped; not part of the request
/// (closures are not data).
public struct JobHooks: Sendable {
    /// Called now and then with the archive's progress; never prints.
    public var progress: (@Sendable (AssembleProgress) -> Void)?
    /// Called now and then while a journal is replayed; never prints.
    public var journalProgress: JournalReplayProgress?
    /// Checked once per entry and per output write; set it to stop the job (`FWError(.cancelled)`,
    /// no output left). The process's own (`Cancellation.process`, set by the CLI's signal
    /// handlers) is always checked too.
    public var cancellation: Cancellation?

    public init(progress: (@Sendable (AssembleProgress) -> Void)? = nil, journalProgress: JournalReplayProgress? = nil,
                cancellation: Cancellation? = nil) {
        self.progress = progress
        self.journalProgress = journalProgress
        self.cancellation = cancellation
    }

    /// True once the job is to stop.
    var isCancelled: Bool { cancellation?.isCancelled == true || Cancellation.process.isCancelled }

    /// Throws `FWError(.cancelled)` once the job is to stop.
    func check() throws {
        if let cancellation { try cancellation.check() } else { try Cancellation.process.check() }
    }
}

/// A request that lists its own fields once, in `fields(_:)`, run both to decode and to encode
/// them (its groups, source and output, are coded by their own types).
protocol FieldListed {
    associatedtype CodingKeys: CodingKey & CaseIterable
    mutating func fields(_ f: RequestFields<CodingKeys>) throws
}

extension FieldListed {
    /// This request's own fields, read from the flat JSON object.
    mutating func decodeFields(from decoder: any Decoder) throws {
        try fields(.decoding(try decoder.container(keyedBy: CodingKeys.self)))
    }

    /// This request's own fields, written into the flat JSON object.
    func encodeFields(to encoder: any Encoder) throws {
        var copy = self   // `fields` takes its values inout, and only reads them when encoding
        try copy.fields(.encoding(encoder.container(keyedBy: CodingKeys.self)))
    }
}

/// A request coded as one flat JSON object (assemble, extract, export, browse, diff): unknown
/// keys are refused, then its groups are coded by their own types from and into the same object,
/// then its own fields (`FieldListed`).
protocol FlatRequest: FieldListed, Codable {
    /// The request with every default.
    init()
    /// The job's name in messages: "unknown browse option ...".
    static var job: String { get }
    /// Every key of the JSON form: its groups' and its own.
    static var keys: Set<String> { get }
    /// Codes its groups (source and output; a diff's first tree) with `g`, in order.
    mutating func groups(_ g: RequestGroups) throws
}

extension FlatRequest {
    public init(from decoder: any Decoder) throws {
        try RequestKeys.check(decoder, allowed: Self.keys, job: Self.job)
        try self.init(group: decoder)
    }

    /// Decodes the groups and the fields without checking for unknown keys (as the group of a
    /// request that embeds these keys and checks its own set).
    init(group decoder: any Decoder) throws {
        self.init()
        try groups(.decoding(decoder))
        try decodeFields(from: decoder)
    }

    /// The groups, then the own fields, as one flat object.
    public func encode(to encoder: any Encoder) throws {
        var copy = self   // `groups` takes its values inout, and only reads them when encoding
        try copy.groups(.encoding(encoder))
        try encodeFields(to: encoder)
    }
}

/// A job's request (assemble, extract, export): a source group, an output group and its own
/// fields, all keys of one flat JSON object.
protocol JobRequest: FlatRequest {
    var source: SourceRequest { get set }
    var output: OutputRequest { get set }
}

extension JobRequest {
    mutating func groups(_ g: RequestGroups) throws {
        try g.code(&source)
        try g.code(&output)
    }
}

extension AssembleRequest: JobRequest { static let job = "assemble" }
extension ExtractRequest: JobRequest { static let job = "extract" }
extension ExportRequest: JobRequest { static let job = "export" }

/// A request's groups, read from or written to the request's own object by their own types.
enum RequestGroups {
    case decoding(any Decoder)
    case encoding(any Encoder)

    /// A group that codes itself (source, output).
    func code<G: Codable>(_ group: inout G) throws {
        switch self {
        case .decoding(let d): group = try G(from: d)
        case .encoding(let e): try group.encode(to: e)
        }
    }

    /// A flat request embedded as a group (a diff's first tree): its keys are checked by the
    /// embedding request.
    func code<G: FlatRequest>(_ group: inout G) throws {
        switch self {
        case .decoding(let d): group = try G(group: d)
        case .encoding(let e): try group.encode(to: e)
        }
    }
}

/// A request's own fields, read from or written to its keyed container. Decoding keeps a
/// field's default when its key is missing; encoding writes an optional only when it is set.
enum RequestFields<Key: CodingKey> {
    case decoding(KeyedDecodingContainer<Key>)
    case encoding(KeyedEncodingContainer<Key>)

    /// A field with a default (a flag, a mode).
    func value<T: Codable>(_ value: inout T, _ key: Key) throws {
        switch self {
        case .decoding(let c): value = try c.decodeIfPresent(T.self, forKey: key) ?? value
        case .encoding(var c): try c.encode(value, forKey: key)
        }
    }

    /// A field that is absent unless given.
    func optional<T: Codable>(_ value: inout T?, _ key: Key) throws {
        switch self {
        case .decoding(let c): value = try c.decodeIfPresent(T.self, forKey: key)
        case .encoding(var c): try c.encodeIfPresent(value, forKey: key)
        }
    }

    /// A root selector (see `RequestKeys.selector`), absent unless given.
    func selector(_ value: inout String?, _ key: Key) throws {
        switch self {
        case .decoding(let c): value = try RequestKeys.selector(c, key)
        case .encoding(var c): try c.encodeIfPresent(value, forKey: key)
        }
    }

    /// A partition selector (see `RequestKeys.selector`), "" unless given.
    func selector(_ value: inout String, _ key: Key) throws {
        switch self {
        case .decoding(let c): value = try RequestKeys.selector(c, key) ?? value
        case .encoding(var c): try c.encode(value, forKey: key)
        }
    }

    /// A list of paths (see `RequestKeys.list`).
    func list(_ value: inout [String], _ key: Key) throws {
        switch self {
        case .decoding(let c): value = try RequestKeys.list(c, key)
        case .encoding(var c): try c.encode(value, forKey: key)
        }
    }
}

/// A source request whose unknown keys are refused (its own decoder reads a shared object).
struct Checked<T: Decodable>: Decodable {
    let value: T
    init(from decoder: any Decoder) throws {
        try RequestKeys.check(decoder, allowed: Set(SourceRequest.CodingKeys.allCases.map(\.rawValue)), job: "open")
        value = try T(from: decoder)
    }
}

/// The decoding rules the requests share: unknown keys refused with the known ones listed,
/// selectors given as numbers or strings, lists given as one string or several.
enum RequestKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// A request's own keys with those of its source and output groups.
    static func keys<K: CodingKey & CaseIterable>(_ own: K.Type) -> Set<String> {
        Set(K.allCases.map(\.stringValue) + SourceRequest.CodingKeys.allCases.map(\.rawValue)
            + OutputRequest.CodingKeys.allCases.map(\.rawValue))
    }

    /// A flat request from JSON (unknown keys and wrong types are `.invalidArgument`).
    static func decode<R: FlatRequest>(_ json: [UInt8]) throws -> R {
        try decode(R.self, json, job: R.job)
    }

    static func check(_ decoder: any Decoder, allowed: Set<String>, job: String) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let unknown = c.allKeys.map(\.stringValue).filter { !allowed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw FWError(.invalidArgument, "unknown \(job) option\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")) (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// A partition or root selector: "3", 3, "hassos-system0".
    static func selector<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> String? {
        if let n = try? c.decodeIfPresent(Int.self, forKey: key) { return String(n) }  // a number given as a JSON number; else a string below
        return try c.decodeIfPresent(String.self, forKey: key)
    }

    /// A list of paths: ["a", "b"] or "a".
    static func list<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> [String] {
        if let one = try? c.decodeIfPresent(String.self, forKey: key) { return [one] }  // a single path; else a list below
        return try c.decodeIfPresent([String].self, forKey: key) ?? []
    }

    static func decode<T: Decodable>(_ type: T.Type, _ json: [UInt8], job: String) throws -> T {
        let bytes = json.isEmpty ? Array("{}".utf8) : json
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let e as FWError {
            throw e
        } catch DecodingError.typeMismatch(let type, let context), DecodingError.valueNotFound(let type, let context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            guard !key.isEmpty else { throw FWError(.invalidArgument, "\(job) options must be a JSON object") }
            throw FWError(.invalidArgument, "\(job) option \(key): expected \(describe(type))")
        } catch DecodingError.dataCorrupted(let context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw FWError(.invalidArgument, "\(job) options\(key.isEmpty ? "" : " (\(key))"): \(context.debugDescription)")
        } catch {
            throw FWError(.invalidArgument, "\(job) options are not valid JSON: \(error)")
        }
    }

    /// A JSON type as a message says it.
    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is UInt64.Type, is UInt32.Type: return "an integer"
        case is [String].Type, is [Any].Type: return "a list"
        default: return "\(type)".hasPrefix("Dictionary") ? "a JSON object" : "\(type)"
        }
    }
}

extension AssembleFormat: Codable {}
extension HardlinkMode: Codable {}
extension CompressionFormat: Codable {
    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let format = CompressionFormat(name: name) else {
            throw FWError(.invalidArgument, "unknown compression \(name.debugDescription) (none, gzip, zstd)")
        }
        self = format
    }
}
