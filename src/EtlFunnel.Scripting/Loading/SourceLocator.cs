using System.Diagnostics;
using System.Reflection;
using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;

namespace EtlFunnel.Scripting.Loading;

/// <summary>
/// Finds the hook's own source line for an exception. For scripts it reads the sequence points of the emitted PDB
/// directly (one frame, not the whole trace: a runaway recursion can leave tens of thousands of frames, and resolving
/// all of them through <see cref="StackTrace"/> with file info takes seconds).
/// </summary>
internal static class SourceLocator
{
    public static (string? File, int? Line) FromPdb(Exception exception, Assembly hookAssembly, ImmutableArray<byte> pdbImage, string fallbackFile)
    {
        var (file, line, _) = FromPdbWithColumn(exception, hookAssembly, pdbImage, fallbackFile);
        return (file, line);
    }

    /// <summary>The innermost frame of hook code in the exception's stack: file, line and column of its sequence point.</summary>
    public static (string? File, int? Line, int? Column) FromPdbWithColumn(Exception exception, Assembly hookAssembly, ImmutableArray<byte> pdbImage, string fallbackFile)
    {
        using var pdb = MetadataReaderProvider.FromPortablePdbImage(pdbImage);
        var reader = pdb.GetMetadataReader();
        foreach (var frame in new StackTrace(exception, fNeedFileInfo: false).GetFrames())
        {
            var method = frame.GetMethod();
            if (method?.DeclaringType is not { } type || type.Assembly != hookAssembly
                || (type.FullName ?? "").Contains(Compiling.ScriptCompiler.RuntimeClassName, StringComparison.Ordinal)
                || frame.GetILOffset() < 0)
            {
                continue;
            }

            var handle = MetadataTokens.MethodDefinitionHandle(method.MetadataToken & 0xFFFFFF);
            SequencePoint? best = null;
            foreach (var point in reader.GetMethodDebugInformation(handle).GetSequencePoints())
            {
                if (!point.IsHidden && point.Offset <= frame.GetILOffset() && (best is null || point.Offset >= best.Value.Offset))
                {
                    best = point;
                }
            }

            if (best is { } found)
            {
                return (reader.GetString(reader.GetDocument(found.Document).Name), found.StartLine, found.StartColumn);
            }
        }

        return (fallbackFile, null, null);
    }

    public static (string? File, int? Line) FromStackTrace(Exception exception, Func<Assembly, bool> isHookCode, string fallbackFile)
    {
        foreach (var frame in new StackTrace(exception, fNeedFileInfo: true).GetFrames())
        {
            if (frame.GetMethod()?.DeclaringType is { } type && isHookCode(type.Assembly))
            {
                return frame.GetFileName() is { Length: > 0 } file && frame.GetFileLineNumber() > 0
                    ? (file, frame.GetFileLineNumber())
                    : (fallbackFile, null);
            }
        }

        return (fallbackFile, null);
    }
}
