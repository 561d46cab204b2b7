# Writes a bash completion script for sluice from the binary's own --help output.
#   cmake -DSLUICE=path/to/sluice -DOUTPUT=sluice.bash -P bash_completion.cmake
# Completes subcommands, each subcommand's options (and the global ones, which may follow it),
# the choices of options CLI11 lists as {a,b}, and file names for option values and positionals.
# CLI11 (2.x) help lines parsed: "  -h,--help   Print ...", "  --rate FLOAT=20000   ...",
# "  --log-format TEXT:{text,json}=text", and under "Subcommands:" "  run   Run a pipeline file".

function(sluice_help args out_text)
  execute_process(COMMAND "${SLUICE}" ${args} --help OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SLUICE} ${args} --help exited ${rc}")
  endif()
  # Brackets and semicolons would confuse CMake's list splitting; neither matters here.
  string(REPLACE ";" "," text "${text}")
  string(REPLACE "[" "<" text "${text}")
  string(REPLACE "]" ">" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${out_text} "${text}" PARENT_SCOPE)
endfunction()

# Options of one help text: names (all), the names that take a value, and "name=choices" pairs.
function(sluice_parse_options lines out_names out_valued out_choices)
  set(names "")
  set(valued "")
  set(choices "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^  (-[-A-Za-z0-9,]+)( ([A-Z]+)(:{([^}]*)})?)?")
      string(REPLACE "," ";" opts "${CMAKE_MATCH_1}")
      set(type "${CMAKE_MATCH_3}")
      set(members "${CMAKE_MATCH_5}")
      list(APPEND names ${opts})
      if(type)
        list(APPEND valued ${opts})
        if(members)
          string(REPLACE "," " " members "${members}")
          foreach(o IN LISTS opts)
            list(APPEND choices "${o}=${members}")
          endforeach()
        endif()
      endif()
    endif()
  endforeach()
  set(${out_names} "${names}" PARENT_SCOPE)
  set(${out_valued} "${valued}" PARENT_SCOPE)
  set(${out_choices} "${choices}" PARENT_SCOPE)
endfunction()

sluice_help("" top)
sluice_parse_options("${top}" global_names global_valued global_choices)
set(subcommands "")
set(in_subcommands FALSE)
foreach(line IN LISTS top)
  if(line MATCHES "^Subcommands:")
    set(in_subcommands TRUE)
  elseif(in_subcommands AND line MATCHES "^  ([a-z][-a-z0-9]*)( |$)")
    list(APPEND subcommands "${CMAKE_MATCH_1}")
  elseif(in_subcommands AND NOT line MATCHES "^ ")
    set(in_subcommands FALSE)
  endif()
endforeach()
if(NOT subcommands)
  message(FATAL_ERROR "no subcommands found in `${SLUICE} --help`")
endif()

set(all_choices ${global_choices})
set(cases "")
foreach(sub IN LISTS subcommands)
  sluice_help("${sub}" text)
  sluice_parse_options("${text}" names valued choices)
  list(APPEND all_choices ${choices})
  set(positional_files 0)
  if(text MATCHES ":FILE")
    set(positional_files 1)
  endif()
  list(APPEND names ${global_names})
  list(REMOVE_DUPLICATES names)
  list(JOIN names " " names)
  list(APPEND valued ${global_valued})
  list(JOIN valued " " valued)
  string(APPEND cases "    ${sub}) opts=\"${names}\"; valued=\" ${valued} \"; "
                      "files=${positional_files} ;;\n")
endforeach()
list(JOIN global_valued " " global_valued)
list(JOIN global_names " " global_names)
list(JOIN subcommands " " subcommands)
set(choice_cases "")
list(REMOVE_DUPLICATES all_choices)
foreach(c IN LISTS all_choices)
  string(REGEX MATCH "^([^=]+)=(.*)$" _ "${c}")
  string(APPEND choice_cases "      ${CMAKE_MATCH_1}) "
                             "COMPREPLY=( $(compgen -W \"${CMAKE_MATCH_2}\" -- \"$cur\") ); return ;;\n")
endforeach()

file(WRITE "${OUTPUT}" "# bash completion for sluice, generated from `sluice --help` by
# cmake/bash_completion.cmake (do not edit). Installed as
# share/bash-completion/completions/sluice; or: source this file.
_sluice() {
  local cur=\"\${COMP_WORDS[COMP_CWORD]}\" prev=\"\${COMP_WORDS[COMP_CWORD-1]}\"
  local sub=\"\" i w opts files=0 valued=\" ${global_valued} \"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\"\${COMP_WORDS[i]}\"
    case \"$w\" in
      -*) [[ \"$valued\" == *\" $w \"* ]] && ((i++)) ;;
      *) sub=\"$w\"; break ;;
    esac
  done
  case \"$sub\" in
    \"\") opts=\"${global_names}\" ;;
${cases}    *) return ;;
  esac
  if [[ \"$valued\" == *\" $prev \"* ]]; then
    case \"$prev\" in
${choice_cases}    esac
    COMPREPLY=( $(compgen -f -- \"$cur\") )
  elif [[ \"$cur\" == -* ]]; then
    COMPREPLY=( $(compgen -W \"$opts\" -- \"$cur\") )
  elif [[ -z \"$sub\" ]]; then
    COMPREPLY=( $(compgen -W \"${subcommands}\" -- \"$cur\") )
  elif ((files)); then
    COMPREPLY=( $(compgen -f -- \"$cur\") )
  fi
}
complete -o filenames -o bashdefault -F _sluice sluice
")
