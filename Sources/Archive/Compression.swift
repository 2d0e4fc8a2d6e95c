import DiskImage
import Foundation

/// The compression formats, by the names the command line and the libraries take ("tar", "gz"
/// and "zst" are accepted for none, gzip and zstd).
public enum CompressionFormat: String, Sendable, CaseIterable {
    case none, gzip, zstd

    public init?(name: String) {
        switch name.lowercased() {
        case "none", "tar": self = .none
        case "gzip", "gz": self = .gzip
        case "zstd", "zst": self = .zstd
        default: return nil
        }
    }

    /// The format an output name implies: ".tar" none, ".zst"/".tzst" zstd, anything else gzip.
    public init(forOutput name: String) {
        if name.hasSuffix(".tar") { self = .none } else if name.hasSuffix(".zst") || name.hasSuffix(".tzst") { self = .zstd } else { self = .gzip }
    }
}

/// How the tar stream is compressed.
public enum Compression: Sendable, Equatable, CustomStringConvertible {
    case none
    /// Parallel gzip (libdeflate, independent members), level 1-12.
    case gzip(level: Int)
    /// Zstandard, level 1-19.
    case zstd(level: Int)

    public static let defaultGzip = Compression.gzip(level: 6)

    /// Parses "none", "gzip", "zstd" with an optional level (nil: the format's default).
    public init(name: String, level: Int? = nil) throws {
        guard let format = CompressionFormat(name: name) else {
            throw FWError(.invalidArgument, "unknown compression \(name.debugDescription) (none, gzip, zstd)")
        }
        try self.init(format, level: level)
    }

    /// A format with a level (nil: the format's default, gzip 6 and zstd 3); checks the level.
    public init(_ format: CompressionFormat, level: Int? = nil) throws {
        switch format {
        case .none: self = .none
        case .gzip: self = .gzip(level: level ?? 6)
        case .zstd: self = .zstd(level: level ?? 3)
        }
        try validate()
    }

    public func validate() throws {
        switch self {
        case .none: break
        case .gzip(let level):
            guard GzipSink.levels.contains(level) else { throw FWError(.invalidArgument, "gzip level \(level) is not between 1 and 12") }
        case .zstd(let level):
            guard (1...19).contains(level) else { throw FWError(.invalidArgument, "zstd level \(level) is not between 1 and 19") }
        }
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .gzip(let level): return "gzip -\(level)"
        case .zstd(let level): return "zstd -\(level)"
        }
    }

    /// A sink compressing into `downstream` (itself for `.none`). Finishing it finishes `downstream`.
    public func sink(over downstream: any ByteSink, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> any ByteSink {
        switch self {
        case .none: return downstream
        case .gzip(let level): return try GzipSink(downstream: downstream, level: level, threads: threads)
        case .zstd(let level): return try ZstdSink(downstream: downstream, level: level, threads: threads)
        }
    }
}
