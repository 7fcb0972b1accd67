"""Stand-in for ComfyUI's folder_paths module, rooted at a test's temporary folder."""

import os

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
folder_names_and_paths = {}
base_path = models_dir = input_directory = output_directory = temp_directory = user_directory = None


def configure(root):
    global base_path, models_dir, input_directory, output_directory, temp_directory, user_directory
    base_path = str(root)
    models_dir = os.path.join(base_path, "models")
    input_directory = os.path.join(base_path, "input")
    output_directory = os.path.join(base_path, "output")
    temp_directory = os.path.join(base_path, "temp")
    user_directory = os.path.join(base_path, "user")
    for folder in (models_dir, input_directory, output_directory, temp_directory, user_directory):
        os.makedirs(folder, exist_ok=True)
    folder_names_and_paths.clear()
    folder_names_and_paths["checkpoints"] = ([os.path.join(models_dir, "checkpoints")],
                                             supported_pt_extensions)


def get_input_directory():
    return input_directory


def get_output_directory():
    return output_directory


def get_temp_directory():
    return temp_directory


def get_user_directory():
    return user_directory


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    if folder_name in folder_names_and_paths:
        paths, _exts = folder_names_and_paths[folder_name]
        if full_folder_path not in paths:
            if is_default:
                paths.insert(0, full_folder_path)
            else:
                paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]


def get_filename_list(folder_name):
    paths, extensions = folder_names_and_paths[folder_name]
    found = set()
    for folder in paths:
        if not os.path.isdir(folder):
            continue
        for dirpath, _dirs, files in os.walk(folder, followlinks=True):
            for name in files:
                if not extensions or os.path.splitext(name)[1].lower() in extensions:
                    found.add(os.path.relpath(os.path.join(dirpath, name), folder))
    return sorted(found)


def get_full_path(folder_name, filename):
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for folder in folder_names_and_paths[folder_name][0]:
        full = os.path.join(folder, filename)
        if os.path.isfile(full):
            return full
    return None


def annotated_filepath(name):
    for tag, getter in (("[output]", get_output_directory), ("[input]", get_input_directory),
                        ("[temp]", get_temp_directory)):
        if name.endswith(tag):
            return name[:-len(tag)].rstrip(), getter()
    return name, None


def get_annotated_filepath(name, default_dir=None):
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return os.path.join(base_dir, name)


def exists_annotated_filepath(name):
    return os.path.exists(get_annotated_filepath(name))


def get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("Saving image outside the output folder is not allowed.")
    os.makedirs(full_output_folder, exist_ok=True)
    counters = [0]
    for existing in os.listdir(full_output_folder):
        if existing.startswith(filename + "_"):
            digits = existing[len(filename) + 1:].split("_")[0].split(".")[0]
            if digits.isdigit():
                counters.append(int(digits))
    return full_output_folder, filename, max(counters) + 1, subfolder, filename_prefix
